'use strict';
/**
 * `DiffusionServerManager` / `diffusionServer`: genai-electron's diffusion server API over the
 * native supervisor (src/diffusion/). Rust does the work (sd-server/sd-cli processes, the job queue,
 * the HTTP API, sd-server residency); this class adapts it to JS: EventEmitter events, Promises,
 * Buffers, onProgress, and the 0.26 calls an orchestrator drives (executeImageGeneration,
 * settleResidency, releaseBackend).
 */

const { EventEmitter } = require('node:events');
const binding = require('../binding.js');
const { toJson } = require('./native-json.js');
const { native, nativeSync, ServerError } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');
const { probeOptions, SystemInfo } = require('./system-info.js');
const calibration = require('./diffusion-calibration.js');
const binaries = require('./binaries.js');

const BINARY_DIR_ENV = 'GENAI_ELECTRON_SD_BINARY_DIR';


function envNumber(name) {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

let exitHookInstalled = false;
/** A host that exits (even with children running) takes every sd.cpp child with it. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => binding.diffusionKillAllChildren());
}

function cancelledError(id) {
  const err = new Error('Image generation cancelled');
  err.code = 'GENERATION_CANCELLED';
  err.generationId = id;
  return err;
}

/** Only these usage modes travel with a request; 0.26 ignores any other value in generateImage(). */
function requestMode(mode) {
  return mode === 'burst' || mode === 'single' ? mode : undefined;
}

function startEnv() {
  return {
    binaryDir: process.env[BINARY_DIR_ENV],
    resultTtlMs: envNumber('IMAGE_RESULT_TTL_MS'),
    cleanupIntervalMs: envNumber('IMAGE_CLEANUP_INTERVAL_MS'),
  };
}

class DiffusionServerManager extends EventEmitter {
  /**
   * `modelManager` and `systemInfo` default to the singletons. With a `llamaServer`, a
   * ResourceOrchestrator is made as in 0.26 (LLM offload around images, room made on LLM start);
   * without one `getOrchestrator()` is undefined and `'auto'` residency is always `'burst'`.
   */
  constructor(modelManager, systemInfo, llamaServer) {
    super();
    installExitHook();
    /** @type {Map<string, Function>} onProgress callbacks of generateImage() calls, by job id. */
    this._progress = new Map();
    this._config = undefined;
    this._keepAlive = undefined;
    this._modelManager = modelManager;
    this._systemInfo = systemInfo;
    this._llamaServer = llamaServer;
    this._orchestrator = undefined;
    this._calibrating = false;
    /** Bumped by stop(), so a start() still provisioning its binary knows it was cancelled. */
    this._stopEpoch = 0;
    /** The start() whose binary is being provisioned (status `starting` before the native start). */
    this._provisioning = undefined;
    this._lastStatus = 'stopped';
    this._native = new binding.NativeDiffusionServer((json) => this._onNative(json));
    if (llamaServer && typeof llamaServer.registerPreStartHook === 'function') {
      // As 0.26: the LLM is offloaded around images, and an LLM start makes room first.
      const { ResourceOrchestrator } = require('./resource-orchestrator.js');
      const orchestrator = new ResourceOrchestrator(systemInfo, llamaServer, this, modelManager);
      this._orchestrator = orchestrator;
      this._unregisterPreStartHook = llamaServer.registerPreStartHook((ctx) => orchestrator.prepareForLLMStart(ctx));
      this._native.setHttpGate(true);
    }
  }

  /** Emits without letting a throwing listener break the caller (or the native callback). */
  _safeEmit(event, ...args) {
    try {
      this.emit(event, ...args);
    } catch {
      // A listener's exception is its own; the server's state is already consistent.
    }
  }

  /**
   * Emits `'status'` on a change. JS announces `starting` itself while the binary is provisioned
   * (as 0.26, whose start() is `starting` from its first line); the native `starting` that follows
   * is then not repeated.
   */
  _emitStatus(status) {
    const previous = this._lastStatus;
    if (status === previous) return;
    this._lastStatus = status;
    this._updateKeepAlive(status);
    this._safeEmit('status', status, previous);
  }

  /** Keeps Node alive while a server is up, as a listening Node http server would. */
  _updateKeepAlive(status) {
    if (status === 'stopped') {
      if (this._keepAlive) clearInterval(this._keepAlive);
      this._keepAlive = undefined;
    } else if (!this._keepAlive) {
      this._keepAlive = setInterval(() => {}, 1 << 30);
    }
  }

  _onNative(json) {
    let ev;
    try {
      ev = JSON.parse(json);
    } catch {
      return;
    }
    switch (ev.type) {
      case 'status':
        this._emitStatus(ev.status);
        break;
      case 'crashed':
        this._safeEmit('crashed', {
          code: ev.code,
          signal: ev.signal,
          exitCode: ev.exitCode === null ? undefined : ev.exitCode,
          stderr: ev.stderr,
          message: ev.message,
        });
        break;
      case 'backend-status': {
        const event = { state: ev.state, previous: ev.previous };
        if (ev.reason !== undefined) event.reason = ev.reason;
        if (ev.exit) event.exit = { code: ev.exit.code, signal: ev.exit.signal };
        this._safeEmit('backend-status', event);
        break;
      }
      case 'backend-released':
        try {
          this._orchestrator?.onDiffusionBackendReleased?.(ev.reason);
        } catch {
          // The orchestrator's trouble must not break the release that already happened.
        }
        break;
      case 'binary-log':
        this._safeEmit('binary-log', { message: ev.message, level: ev.level });
        break;
      case 'gate':
        this._runGated(ev.id, ev.usageMode ?? undefined);
        break;
      case 'progress': {
        const cb = this._progress.get(ev.id);
        if (cb) {
          try {
            cb(ev.currentStep, ev.totalSteps, ev.stage, ev.percentage);
          } catch {
            // A throwing onProgress must not stop the generation.
          }
        }
        break;
      }
      default:
        break;
    }
  }

  /**
   * Starts the server for `config.modelId`: checks the model files, decides the optimisation
   * flags, spawns sd-server (backend 'server') and opens the HTTP API. Resolves once it serves.
   */
  async start(config) {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('start() expects a DiffusionServerConfig object');
    }
    if (this._calibrating) {
      throw new ServerError('Cannot start server while offload calibration is in progress', {
        suggestion: 'Wait for calibrate() to finish, or abort it via its AbortSignal',
      });
    }
    const current = this.getStatus();
    if (current !== 'stopped') {
      const starting = current === 'starting';
      throw new ServerError(current === 'stopping' ? 'Server is stopping' : starting ? 'Server is already starting' : 'Server is already running', {
        suggestion: current === 'stopping' ? 'Wait for stop() to finish' : starting ? 'Wait for the current start() call to finish' : 'Stop the server first with stop()',
      });
    }
    // A stop() called before this start() has returned aborts it, however far the native start
    // got: one that finished on another thread before stop() ran is stopped by that stop().
    const epoch = this._stopEpoch;
    const aborted = () => new ServerError('Server start was aborted by stop()', { code: 'SD_SERVER_START_ABORTED' });
    const provisioning = this._provisionBinary(config);
    if (provisioning) {
      const token = {};
      this._provisioning = token;
      this._emitStatus('starting');
      try {
        await provisioning;
      } catch (error) {
        // After a stop() the start reports the abort, whatever became of the provisioning.
        if (this._stopEpoch !== epoch) throw aborted();
        this._emitStatus('stopped');
        throw error;
      } finally {
        if (this._provisioning === token) this._provisioning = undefined;
      }
      if (this._stopEpoch !== epoch) throw aborted();
    }
    const info = await native(this._native.start(getUserDataPath(), toJson(config), probeOptions(), startEnv()));
    if (this._stopEpoch !== epoch) throw aborted();
    this._config = config;
    this._safeEmit('started', info);
    return info;
  }

  /**
   * Binary provisioning: without binaryPath / GENAI_ELECTRON_SD_BINARY_DIR, makes sure
   * `<userData>/binaries/diffusion/` holds a validated stable-diffusion.cpp build (downloading one
   * if needed), emitting 'binary-log' and 'binary-progress'. The native lookup then finds it there.
   * Returns undefined (nothing to wait for) or a Promise; a stop() meanwhile aborts the start.
   */
  _provisionBinary(config) {
    // With an override nothing is installed, and start() stays synchronous up to the native call.
    if (config.binaryPath != null || process.env[BINARY_DIR_ENV]) return undefined;
    return (async () => {
      const modelArgs = await binaries.diffusionModelArgs(config.modelId, this._modelManager);
      // No diffusion model to start: the native start refuses the config; nothing to install.
      if (modelArgs === null) return undefined;
      return binaries.ensureBinary('diffusion', {
        emitter: this,
        forceValidation: config.forceValidation,
        modelArgs,
      });
    })();
  }

  /** Cancels queued and running generations, ends every child process and closes the API. */
  async stop() {
    this._stopEpoch += 1;
    // A start still provisioning its binary has no native side yet: it notices the epoch.
    const provisioning = this._provisioning !== undefined;
    this._provisioning = undefined;
    const wasStopped = !provisioning && this._native.info().status === 'stopped';
    if (provisioning) this._emitStatus('stopping');
    await native(this._native.stop());
    if (provisioning) this._emitStatus('stopped');
    if (!wasStopped) this._safeEmit('stopped');
  }

  async restart() {
    if (!this._config) throw new ServerError('Cannot restart: no previous configuration');
    if (!this.isStopped()) await this.stop();
    const info = await this.start(this._config);
    this._safeEmit('restarted', info);
    return info;
  }

  /**
   * One image (or `count` images: the result is the first, plus `images` with all of them).
   * Queued behind earlier requests; `onProgress(step, totalSteps, stage, percentage)`.
   */
  async generateImage(config) {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('generateImage() expects an ImageGenerationConfig object');
    }
    const orchestrator = this.getOrchestrator();
    if (orchestrator) return orchestrator.orchestrateImageGeneration(config);
    // Runs and settles residency (usageMode) in one native job, before the result returns.
    return this._run(config, { settle: true });
  }

  /**
   * One image with no residency handling (genai-electron 0.26's core, used by orchestrators and
   * calibration). `flagOverrides` force optimisation flags for this image; a change of flags
   * respawns sd-server (backend-status reason 'flags-changed').
   */
  async executeImageGeneration(config, flagOverrides) {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('executeImageGeneration() expects an ImageGenerationConfig object');
    }
    const { count: _count, ...one } = config;
    return this._run(one, { settle: false, flags: flagOverrides });
  }

  /**
   * `count` images (default 1) as separate jobs with seeds seed+i (a fresh random seed each
   * when none is given); onProgress percentages span the whole batch.
   */
  async executeBatchGeneration(config) {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('executeBatchGeneration() expects an ImageGenerationConfig object');
    }
    const count = Math.max(1, Math.floor(config.count ?? 1));
    const { onProgress, count: _count, ...base } = config;
    const hasSeed = typeof base.seed === 'number' && base.seed >= 0;
    const results = [];
    for (let i = 0; i < count; i++) {
      const seed = hasSeed ? base.seed + i : Math.floor(Math.random() * 2147483647);
      const scaled = onProgress
        ? (step, total, stage, pct) => onProgress(step, total, stage, ((i + (pct ?? 0) / 100) / count) * 100)
        : undefined;
      results.push(await this.executeImageGeneration({ ...base, seed, onProgress: scaled }));
    }
    return results;
  }

  async _run(config, { settle, flags, nativeServer = this._native }) {
    const { onProgress, ...request } = config;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError('onProgress must be a function');
    }
    request.usageMode = requestMode(request.usageMode);
    const flagJson = flags && typeof flags === 'object' ? toJson(flags) : undefined;
    const id = nativeSync(() => nativeServer.submit(toJson(request), flagJson, settle));
    if (onProgress) this._progress.set(id, onProgress);
    this._current = { id, nativeServer };
    let r;
    try {
      r = await native(nativeServer.wait(id));
    } catch (err) {
      if (err && err.details && err.details.code === 'GENERATION_CANCELLED') throw cancelledError(id);
      throw err;
    } finally {
      this._progress.delete(id);
      if (this._current?.id === id) this._current = undefined;
    }
    const one = (img) => ({
      image: img.image,
      format: 'png',
      timeTaken: r.timeTaken,
      seed: img.seed,
      width: img.width,
      height: img.height,
    });
    const result = one(r.images[0]);
    if (r.images.length > 1) result.images = r.images.map(one);
    return result;
  }

  /**
   * Ends sd-server now (`reason` default 'explicit'); `waitForInFlight` lets the running image
   * finish first. A spawn in progress is aborted; overlapping releases report the highest-ranked
   * reason. The server keeps running: the next image spawns sd-server again.
   */
  async releaseBackend(options = {}) {
    const reason = String(options?.reason ?? 'explicit');
    const waitForInFlight = Boolean(options?.waitForInFlight);
    // Claimed at call time; the stop itself starts after this tick, so releases called together
    // (`Promise.all([...])`) all count before any of them can finish, as in genai-electron.
    this._native.claimRelease(reason, waitForInFlight);
    await null;
    await native(this._native.releaseBackend(reason, waitForInFlight));
  }

  /** After an image: 'single' releases sd-server, anything else arms the idle release. */
  async settleResidency(mode) {
    await native(this._native.settleResidency(mode === 'single' || mode === 'burst' ? mode : undefined));
  }

  /** The request's mode, else the server's, else 'single' when an LLM had to make room, else 'burst'. */
  resolveUsageMode(requestMode, llmWasOffloaded) {
    if (requestMode === 'burst' || requestMode === 'single') return requestMode;
    const configured = this._config?.usageMode;
    if (configured === 'burst' || configured === 'single') return configured;
    return llmWasOffloaded ? 'single' : 'burst';
  }

  /** `DiffusionBackendInfo`: sd-server's state, pid, startedAt, loadTimeMs, lastUsedAt, flags. */
  getBackendInfo() {
    return this._native.backendInfo();
  }

  /** The ResourceOrchestrator set for this manager, if any. */
  getOrchestrator() {
    return this._orchestrator;
  }

  /** Installs the orchestrator that `generateImage()` delegates to (and that hears releases). */
  setOrchestrator(orchestrator) {
    this._orchestrator = orchestrator ?? undefined;
    this._native.setHttpGate(Boolean(this._orchestrator));
  }

  /**
   * An image submitted over the HTTP API, queued natively and held until this opens its gate:
   * it goes through the orchestrator as generateImage() does (0.26 runs HTTP jobs through
   * orchestrateImageGeneration), so the LLM is offloaded first when both would not fit, and
   * residency is settled (and the LLM brought back) after it. An orchestrator without
   * orchestrateQueuedGeneration (an app's own) lets it run and residency is settled here.
   */
  _runGated(id, usageMode) {
    const open = () => this._native.openGate(id);
    const finished = () => native(this._native.wait(id));
    const orchestrator = this._orchestrator;
    const done =
      orchestrator && typeof orchestrator.orchestrateQueuedGeneration === 'function'
        ? orchestrator.orchestrateQueuedGeneration({ usageMode }, () => {
            open();
            return finished();
          })
        : (open(), finished().finally(() => this.settleResidency(this.resolveUsageMode(usageMode, false))));
    // The job's outcome is the HTTP client's (it polls the registry); the gate never stays shut.
    done.catch(() => undefined).finally(open);
  }

  isCalibrating() {
    return this._calibrating;
  }

  /**
   * Times each flag combo at each size and recommends one per size (genai-electron 0.26's
   * algorithm). Needs the server stopped; runs its own private sd-server session meanwhile.
   */
  async calibrate(config) {
    if (!this.isStopped()) {
      throw new ServerError('Cannot calibrate while the server is running', {
        suggestion: 'Stop the server with stop() before calibrating',
      });
    }
    if (this._calibrating) {
      throw new ServerError('Calibration is already in progress', {
        suggestion: 'Wait for the current calibrate() call to finish',
      });
    }
    if (config?.signal?.aborted) return calibration.calibrate(config, {});
    this._calibrating = true;
    let session;
    const host = {
      systemInfo: this._systemInfo ?? SystemInfo.getInstance(),
      orchestrator: this.getOrchestrator(),
      emit: (p) => this._safeEmit('calibration-progress', p),
      modelInfo: async (id) => {
        const mm = this._modelManager ?? require('./model-manager.js').ModelManager.getInstance();
        const info = await mm.getModelInfo(id);
        if (info.type !== 'diffusion') {
          const { ModelNotFoundError } = require('./errors.js');
          throw new ModelNotFoundError(`Model ${id} is not a diffusion model (type: ${info.type})`);
        }
        return info;
      },
      prepare: async (modelInfo, { threads, batchSize }) => {
        session = new binding.NativeDiffusionServer((json) => this._onCalibrationNative(json));
        const cfg = {
          modelId: modelInfo.id,
          port: 'auto',
          threads,
          batchSize,
          usageMode: 'burst',
          idleTimeoutMs: 0,
          binaryPath: this._config?.binaryPath,
        };
        await native(session.start(getUserDataPath(), toJson(cfg), probeOptions(), startEnv()));
      },
      runImage: async (genConfig, combo, onPercent) => {
        const t0 = Date.now();
        const marks = {};
        const flags = {};
        for (const k of ['clipOnCpu', 'vaeOnCpu', 'offloadToCpu', 'diffusionFlashAttention']) {
          if (combo[k] !== undefined) flags[k] = combo[k];
        }
        const onProgress = (_s, _t, stage, pct) => {
          if (marks[stage] === undefined) marks[stage] = Date.now();
          if (pct !== undefined) onPercent(pct);
        };
        const r = await this._run({ ...genConfig, onProgress }, { settle: false, flags, nativeServer: session });
        const end = Date.now();
        const stageMs = {};
        const dif = marks.diffusion;
        const dec = marks.decoding;
        if (dif !== undefined) stageMs.loadMs = dif - t0;
        if (dif !== undefined && dec !== undefined) stageMs.diffusionMs = dec - dif;
        if (dec !== undefined) stageMs.decodeMs = end - dec;
        return { timeTaken: r.timeTaken, stageMs, flags: session.backendInfo().flags };
      },
      release: async () => {
        await native(session.releaseBackend('calibration', false)).catch(() => undefined);
      },
      cancelCurrent: () => {
        const cur = this._current;
        if (cur && cur.nativeServer === session) {
          try {
            cur.nativeServer.cancel(cur.id);
          } catch {
            // Already finished.
          }
        }
      },
      finish: async () => {
        if (!session) return;
        await native(session.releaseBackend('calibration', false)).catch(() => undefined);
        await native(session.stop()).catch(() => undefined);
      },
    };
    try {
      return await calibration.calibrate(config, host);
    } finally {
      this._calibrating = false;
    }
  }

  /** The private calibration session: its images and backend events, not its server status. */
  _onCalibrationNative(json) {
    if (json.includes('"type":"status"') || json.includes('"type":"crashed"')) return;
    this._onNative(json);
  }

  /** Cancels a queued or running generation; unknown id -> ServerError (GENERATION_NOT_FOUND). */
  async cancelImageGeneration(id) {
    nativeSync(() => this._native.cancel(String(id)));
  }

  getActiveGenerationId() {
    return this._native.activeGenerationId() ?? undefined;
  }

  getInfo() {
    const info = this._native.info();
    if (this._provisioning !== undefined) info.status = 'starting';
    return info;
  }

  getStatus() {
    return this.getInfo().status;
  }

  async isHealthy() {
    return this._native.isHealthy();
  }

  getPort() {
    return this._native.info().port;
  }

  /** sd-server's pid; undefined while it is absent (it is spawned on the first image). */
  getPid() {
    return this._native.info().pid ?? undefined;
  }

  getConfig() {
    return this._config;
  }

  isRunning() {
    return this.getStatus() === 'running';
  }

  isStopped() {
    return this.getStatus() === 'stopped';
  }

  isStarting() {
    return this.getStatus() === 'starting';
  }

  isStopping() {
    return this.getStatus() === 'stopping';
  }

  hasCrashed() {
    return this.getStatus() === 'crashed';
  }

  async getLogs(lines = 100) {
    return this._native.logs(getUserDataPath(), Math.max(0, Math.floor(Number(lines) || 0)));
  }

  async getStructuredLogs(lines = 100) {
    return this._native.structuredLogs(getUserDataPath(), Math.max(0, Math.floor(Number(lines) || 0)));
  }

  async clearLogs() {
    await this._native.clearLogs(getUserDataPath());
  }

  getLogPath() {
    return this._native.logPath(getUserDataPath()) ?? undefined;
  }
}

module.exports = { DiffusionServerManager, BINARY_DIR_ENV, pickRecommended: calibration.pickRecommended };
