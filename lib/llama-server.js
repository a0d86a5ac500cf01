'use strict';
/**
 * `LlamaServerManager` / `llamaServer`: genai-electron 0.26's LLM server API over the native
 * supervisor (src/supervisor, src/llama). The process, its readiness, its stop and its log are
 * native; this class keeps 0.26's status machine, events, pre-start hooks, auto-restart and
 * health watchdog, and calls the injected model manager and system info as 0.26 does (the
 * orchestrator and tests rely on that injection).
 */

const { EventEmitter } = require('node:events');
const path = require('node:path');
const binding = require('../binding.js');
const { toJson } = require('./native-json.js');
const { native, nativeSync, ServerError, InsufficientResourcesError, PortInUseError, GenaiElectronError, ContextConstraintError } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');
const { checkHealth, findFreePort, isPortBindable, isServerResponding, normalizeHealthHost } = require('./net.js');

const BINARY_DIR_ENV = 'GENAI_ELECTRON_LLAMA_BINARY_DIR';
const DEFAULT_PORT = 8080;
const DEFAULT_STARTUP_TIMEOUT_MS = 120000;
const HEALTH_TIMEOUT_MS = 5000;


/**
 * The config fields getOptimalConfig takes as hints (0.26 passes the same set; the context
 * policy only when no exact contextSize is given).
 */
function sizingHints(config) {
  const keys = ['contextSize', 'gpuLayers', 'parallelRequests', 'flashAttention', 'cacheTypeK', 'cacheTypeV', 'cpuMoe', 'nCpuMoe', 'overrideTensors'];
  if (config.contextSize === undefined) keys.push('minimumContextSize', 'preferredContextSize', 'maximumContextSize');
  return Object.fromEntries(keys.map((k) => [k, config[k]]));
}

/**
 * 0.26 throws `ContextConstraintError` for context-policy violations; the native checks report
 * them as ServerErrors with `details.code: 'CONTEXT_CONSTRAINT'`.
 */
function contextConstraint(error) {
  const Cls = require('./errors.js').ContextConstraintError;
  if (!Cls || !(error instanceof ServerError) || !error.details || error.details.code !== 'CONTEXT_CONSTRAINT') return error;
  const { code: _code, ...details } = error.details;
  return new Cls(error.message.replace(/^Server error: /, ''), details);
}

let exitHookInstalled = false;
/** A host that exits (even with servers running) takes every child process with it. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => binding.supervisorKillAllChildren());
}

class LlamaServerManager extends EventEmitter {
  /**
   * @param {object} [modelManager] 0.26's injection point; defaults to the `modelManager` singleton.
   * @param {object} [systemInfo] defaults to the `systemInfo` singleton.
   */
  constructor(modelManager, systemInfo) {
    super();
    installExitHook();
    this.modelManager = modelManager || require('./model-manager.js').ModelManager.getInstance();
    this.systemInfo = systemInfo || require('./system-info.js').SystemInfo.getInstance();
    this._status = 'stopped';
    this._pid = undefined;
    this._port = 0;
    this._config = undefined;
    this._startedAt = undefined;
    this._loadTimeMs = undefined;
    this._effectiveContextSize = undefined;
    this._effectiveParallelRequests = undefined;
    this._healthHost = '127.0.0.1';
    this.serverGeneration = 0;
    /** Bumped by stop() and by every start; a start whose number changed was cancelled. */
    this._generation = 0;
    this._launch = 0;
    this._earlyExit = new Map();
    this._preStartHooks = new Set();
    this._restartAttempts = 0;
    this._restartTimer = undefined;
    this._restartEpoch = 0;
    this._isAutoRestarting = false;
    this._watchdog = undefined;
    this._healthFailures = 0;
    this._watchdogKill = false;
    this._watchdogBusy = false;
    this._stopping = undefined;
    this._keepAlive = undefined;
    this._native = new binding.NativeLlamaServer((json) => this._onNative(json));
  }

  // ---------- status and info (0.26's ServerManager) ----------

  getStatus() {
    return this._status;
  }

  getInfo() {
    return {
      status: this._status,
      health: 'unknown',
      pid: this._pid,
      port: this._port,
      modelId: (this._config && this._config.modelId) || '',
      startedAt: this._startedAt ? this._startedAt.toISOString() : undefined,
      loadTimeMs: this._loadTimeMs,
      configuredContextSize: this._config ? this._config.contextSize : undefined,
      effectiveContextSize: this._effectiveContextSize,
      serverGeneration: this.serverGeneration,
      effectiveParallelRequests: this._effectiveParallelRequests,
    };
  }

  getPort() {
    return this._port;
  }

  getPid() {
    return this._pid;
  }

  getConfig() {
    return this._config;
  }

  isRunning() {
    return this._status === 'running';
  }

  isStopped() {
    return this._status === 'stopped';
  }

  isStarting() {
    return this._status === 'starting';
  }

  isStopping() {
    return this._status === 'stopping';
  }

  hasCrashed() {
    return this._status === 'crashed';
  }

  /** LLM calibration is not provided by this package; see the README. */
  isCalibrating() {
    return false;
  }

  async calibrate() {
    throw new ServerError('LLM calibration (calibrate) is not provided by genai-electron-rs', {
      code: 'NOT_SUPPORTED',
      suggestion: 'Pass contextSize, gpuLayers and parallelRequests explicitly, or let start() size them with systemInfo.getOptimalConfig()',
    });
  }

  async isHealthy() {
    return (await this.getHealthStatus()) === 'ok';
  }

  /** `/health` as 0.26 reads it (`ok`, `error` for a non-2xx answer); `unknown` when not running. */
  async getHealthStatus() {
    if (this._status !== 'running' || this._port === 0) return 'unknown';
    return (await checkHealth(this._port, HEALTH_TIMEOUT_MS, this._healthHost)).status;
  }

  // ---------- logs ----------

  async getLogs(lines = 100) {
    return this._native.logs(Math.max(0, Math.floor(Number(lines) || 0)));
  }

  async getStructuredLogs(lines = 100) {
    return this._native.structuredLogs(Math.max(0, Math.floor(Number(lines) || 0)));
  }

  async clearLogs() {
    await this._native.clearLogs();
  }

  getLogPath() {
    return this._native.logPath() ?? undefined;
  }

  _log(message, level = 'info') {
    this._native.writeLog(level, String(message));
  }

  // ---------- events ----------

  _safeEmit(event, ...args) {
    try {
      this.emit(event, ...args);
    } catch {
      // A listener's exception is its own; the server's state is already consistent.
    }
  }

  _setStatus(status) {
    const old = this._status;
    this._status = status;
    if (status === 'stopped' || status === 'crashed') {
      if (this._keepAlive) clearInterval(this._keepAlive);
      this._keepAlive = undefined;
    } else if (!this._keepAlive) {
      // Keeps Node alive while a server is up, as a listening Node server would.
      this._keepAlive = setInterval(() => {}, 1 << 30);
    }
    this._safeEmit('status', status, old);
  }

  _onNative(json) {
    let ev;
    try {
      ev = JSON.parse(json);
    } catch {
      return;
    }
    if (ev.type !== 'exit' || ev.launch !== this._launch) return;
    if (this._status === 'starting') {
      // Exited between readiness and the switch to running: start() reports it.
      this._earlyExit.set(ev.launch, ev);
      return;
    }
    if (this._status !== 'running') return;
    this._handleExit(ev);
  }

  /** An exit nobody asked for. Any non-zero code or any signal is a crash (0.26 missed signals). */
  _handleExit(ev) {
    const byWatchdog = this._watchdogKill;
    this._watchdogKill = false;
    this._teardownWatchdog();
    this._generation++;
    this._log(`Process exited with code ${ev.code}, signal ${ev.signal}`, 'warn');
    this._pid = undefined;
    this._port = 0;
    this._effectiveContextSize = undefined;
    this._effectiveParallelRequests = undefined;
    if ((ev.code !== 0 && ev.code !== null) || ev.signal || byWatchdog) {
      this._setStatus('crashed');
      const how = ev.signal ? `signal ${ev.signal}` : `code ${ev.code}`;
      this._safeEmit('crashed', {
        code: ev.code,
        signal: ev.signal,
        stderr: ev.stderr,
        message: byWatchdog ? 'llama-server stopped answering /health and was killed' : `llama-server exited unexpectedly (${how})`,
      });
      this._scheduleAutoRestart();
    } else {
      this._setStatus('stopped');
    }
  }

  // ---------- start ----------

  /** Registers `hook({config, reason})`, awaited before every start; returns the unregister function. */
  registerPreStartHook(hook) {
    if (typeof hook !== 'function') throw new TypeError('registerPreStartHook(hook): hook must be a function');
    this._preStartHooks.add(hook);
    return () => {
      this._preStartHooks.delete(hook);
    };
  }

  async _runPreStartHooks(config) {
    const reason = this._isAutoRestarting ? 'auto-restart' : 'start';
    for (const hook of [...this._preStartHooks]) {
      try {
        await hook({ config, reason });
      } catch (error) {
        if (reason === 'start') throw error;
        this._log(`Pre-start hook failed during auto-restart (ignored): ${error && error.message ? error.message : String(error)}`, 'warn');
      }
    }
  }

  /**
   * Binary provisioning, as genai-electron 0.26 does it after canRunModel: without binaryPath or
   * GENAI_ELECTRON_LLAMA_BINARY_DIR, makes sure `<userData>/binaries/llama/` holds a validated
   * llama.cpp build (downloading one if needed; phase 2 loads this model), emitting 'binary-log'
   * and 'binary-progress'. The lookup below then finds it there.
   */
  async _provisionBinary(config, modelInfo) {
    const envDir = process.env[BINARY_DIR_ENV];
    if (config.binaryPath != null || (typeof envDir === 'string' && envDir.trim() !== '')) return;
    await require('./binaries.js').ensureBinary('llama', {
      emitter: this,
      forceValidation: config.forceValidation,
      modelArgs: modelInfo.path ? ['-m', modelInfo.path] : undefined,
    });
  }

  _assertActive(generation) {
    if (generation !== this._generation || this._status !== 'starting') {
      throw new ServerError('llama-server stopped or exited during startup', {
        suggestion: 'Retry start() after the active lifecycle operation has completed',
      });
    }
  }

  /**
   * Starts llama-server for `config.modelId`; resolves with `ServerInfo` once `/health` says 200.
   */
  async start(config) {
    if (this._status === 'running' || this._status === 'starting' || this._status === 'stopping') {
      const s = this._status;
      throw new ServerError(s === 'running' ? 'Server is already running' : s === 'starting' ? 'Server is already starting' : 'Server is already stopping', {
        suggestion: s === 'running' ? 'Stop the server first with stop()' : s === 'starting' ? 'Wait for the current start() call to finish' : 'Wait for stop() to finish before starting again',
      });
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('start(config): config must be an object');
    }
    try {
      nativeSync(() => binding.llamaValidateConfig(toJson(config)));
    } catch (error) {
      throw contextConstraint(error);
    }
    if (!this._isAutoRestarting) {
      this._restartAttempts = 0;
      this._cancelPendingRestart();
    }
    this._effectiveContextSize = undefined;
    this._effectiveParallelRequests = undefined;
    const generation = ++this._generation;
    this._setStatus('starting');
    try {
      await this._runPreStartHooks(config);
      this._assertActive(generation);
      const port = config.port === 'auto' ? await findFreePort() : (config.port ?? DEFAULT_PORT);
      const host = normalizeHealthHost(config.host);
      this._assertActive(generation);
      this._healthHost = host;
      const userData = getUserDataPath();
      this._native.openLog(path.join(userData, 'logs', 'llama-server.log'));
      this._log(`Preparing llama-server for model ${config.modelId} on port ${port}`);
      const modelInfo = await this.modelManager.getModelInfo(config.modelId);
      this._assertActive(generation);
      this._checkModelFiles(modelInfo);
      const canRun = await this.systemInfo.canRunModel(modelInfo, { gpuLayers: config.gpuLayers });
      this._assertActive(generation);
      if (!canRun.possible) {
        const mem = this.systemInfo.getMemoryInfo();
        throw new InsufficientResourcesError(`System cannot run model: ${canRun.reason || 'Insufficient resources'}`, {
          required: `Model size: ${Math.round(modelInfo.size / 1024 ** 3)}GB`,
          available: `Available RAM: ${Math.round(mem.available / 1024 ** 3)}GB`,
          suggestion: canRun.suggestion || canRun.reason || 'Try a smaller model',
        });
      }
      await this._provisionBinary(config, modelInfo);
      this._assertActive(generation);
      const binary = nativeSync(() => binding.llamaResolveBinary(config.binaryPath ?? null, process.env[BINARY_DIR_ENV] ?? null, path.join(userData, 'binaries', 'llama')));
      if (await isServerResponding(port, 2000, host)) throw new PortInUseError(port);
      if (!(await isPortBindable(port, host))) throw new PortInUseError(port);
      this._assertActive(generation);
      await this._occupancyCheck(config.occupancyCheck ?? 'warn', port);
      this._assertActive(generation);
      let finalConfig = await this._autoConfigure({ ...config, port }, modelInfo);
      this._assertActive(generation);
      const built = nativeSync(() => binding.llamaBuildArgs(toJson(finalConfig), modelInfo.path, port));
      if (built.flashAttentionForced) finalConfig = { ...finalConfig, flashAttention: built.flashAttention };
      this._config = finalConfig;
      this._log(`Spawning llama-server: ${binary} with args: ${built.args.join(' ')}`);
      const launch = ++this._launch;
      const launched = await native(
        this._native.launch({
          binary,
          args: built.args,
          healthHost: host,
          port,
          startupTimeoutMs: finalConfig.startupTimeout ?? DEFAULT_STARTUP_TIMEOUT_MS,
          modelPath: modelInfo.path,
          launch,
        }),
      );
      this._assertActive(generation);
      const early = this._earlyExit.get(launch);
      this._earlyExit.clear();
      if (early) {
        throw new ServerError(`llama-server exited right after it became ready (${early.signal ? `signal ${early.signal}` : `code ${early.code}`})`, {
          code: 'EXITED_DURING_STARTUP',
          exitCode: early.code,
          signal: early.signal,
          stderr: early.stderr,
        });
      }
      this._checkRuntimeContext(finalConfig, launched);
      this._pid = launched.pid;
      this._port = port;
      this._loadTimeMs = launched.loadTimeMs;
      this._effectiveContextSize = launched.effectiveContextSize ?? undefined;
      this._effectiveParallelRequests = launched.totalSlots ?? finalConfig.parallelRequests ?? 1;
      this._log(`Server is running and healthy (load time: ${launched.loadTimeMs}ms, configured context: ${finalConfig.contextSize ?? 'llama-fit'} total, effective context: ${this._effectiveContextSize} per slot, slots: ${this._effectiveParallelRequests})`);
      this._startedAt = new Date();
      this._setStatus('running');
      this._startWatchdog(finalConfig);
      this.systemInfo.clearCache();
      this.serverGeneration++;
      const info = this.getInfo();
      this._safeEmit('ready', {
        serverGeneration: this.serverGeneration,
        modelId: finalConfig.modelId,
        port,
        configuredContextSize: finalConfig.contextSize,
        effectiveContextSize: this._effectiveContextSize,
        effectiveParallelRequests: this._effectiveParallelRequests,
        startedAt: this._startedAt.toISOString(),
      });
      this._safeEmit('started', info);
      return info;
    } catch (error) {
      if (generation !== this._generation) {
        throw new ServerError('llama-server stopped or was replaced during startup', {
          cause: error && error.message ? error.message : String(error),
          startupCancelled: true,
          suggestion: 'Retry start() after the active lifecycle operation has completed',
        });
      }
      this._generation++;
      this._pid = undefined;
      this._port = 0;
      this._effectiveContextSize = undefined;
      this._effectiveParallelRequests = undefined;
      this._earlyExit.clear();
      // Whatever was spawned goes (the native side already stopped a failed launch).
      await this._native.stop().catch(() => undefined);
      this._setStatus('stopped');
      this._log(`Failed to start: ${error && error.message ? error.message : String(error)}`, 'error');
      if (error instanceof GenaiElectronError || error instanceof TypeError) throw contextConstraint(error);
      throw new ServerError(`Failed to start llama-server: ${error && error.message ? error.message : 'Unknown error'}`, {
        error: error && error.message ? error.message : String(error),
      });
    }
  }

  /**
   * 0.26's runtime capacity checks on `/props`: the slot count must be the configured one, and
   * the per-slot context (llama-server pads it to 256 and caps it at the model's training
   * context) must still lie within the hard bounds.
   */
  _checkRuntimeContext(finalConfig, launched) {
    const effective = launched.effectiveContextSize;
    if (effective == null) return;
    const { minimumContextSize: minimum, preferredContextSize: preferred, maximumContextSize: maximum } = finalConfig;
    const parallelRequests = finalConfig.parallelRequests ?? 1;
    const details = {
      stage: 'runtime',
      minimumContextSize: minimum,
      preferredContextSize: preferred,
      maximumContextSize: maximum,
      configuredContextSize: finalConfig.contextSize,
      effectiveContextSize: effective,
      parallelRequests,
      effectiveParallelRequests: launched.totalSlots ?? parallelRequests,
    };
    if (launched.totalSlots != null && launched.totalSlots !== parallelRequests) {
      throw new ContextConstraintError(`llama-server reported ${launched.totalSlots} slots, but ${parallelRequests} were configured`, {
        reason: 'runtime-slots-mismatch',
        stage: 'runtime',
        effectiveContextSize: effective,
        parallelRequests,
        effectiveParallelRequests: launched.totalSlots,
        suggestion: 'Check the emitted -np argument and llama-server fitting behavior',
      });
    }
    if (minimum !== undefined && effective < minimum) {
      throw new ContextConstraintError(`Effective context ${effective} is below the required minimum ${minimum}`, {
        reason: 'runtime-below-minimum',
        ...details,
        suggestion: 'Reduce the minimum or parallel request count, or choose a configuration with more context capacity',
      });
    }
    if (maximum !== undefined && effective > maximum) {
      throw new ContextConstraintError(`Effective context ${effective} is above the requested maximum ${maximum}`, {
        reason: 'runtime-above-maximum',
        ...details,
        suggestion: 'Use a smaller configured context or disable llama-server fitting',
      });
    }
  }

  /** Every file of the record must be there (all shards of a split GGUF, not only the first). */
  _checkModelFiles(modelInfo) {
    const fs = require('node:fs');
    const files = [modelInfo.path, ...(Array.isArray(modelInfo.shards) ? modelInfo.shards.map((s) => s && s.path) : [])].filter(Boolean);
    const missing = [...new Set(files)].filter((f) => !fs.existsSync(f));
    if (missing.length > 0) {
      throw new ServerError(`Model files missing for ${modelInfo.id}: ${missing.join(', ')}`, {
        code: 'MODEL_FILES_MISSING',
        modelId: modelInfo.id,
        missing,
        suggestion: 'Download the model again (modelManager.downloadModel) or check modelManager.verifyModel()',
      });
    }
  }

  /** 0.26's `autoConfigureIfNeeded`: unset sizing fields come from getOptimalConfig. */
  async _autoConfigure(config, modelInfo) {
    const optimal = await this.systemInfo.getOptimalConfig(modelInfo, sizingHints(config));
    const fit = config.fit === 'on';
    const out = {
      ...config,
      threads: config.threads ?? optimal.threads,
      contextSize: config.contextSize ?? (fit ? undefined : optimal.contextSize),
      gpuLayers: config.gpuLayers ?? (fit ? undefined : optimal.gpuLayers),
      parallelRequests: config.parallelRequests ?? optimal.parallelRequests,
      flashAttention: config.flashAttention ?? (fit ? undefined : optimal.flashAttention),
      cacheTypeK: config.cacheTypeK ?? (fit ? undefined : optimal.cacheTypeK),
      cacheTypeV: config.cacheTypeV ?? (fit ? undefined : optimal.cacheTypeV),
      cpuMoe: config.cpuMoe ?? (fit ? undefined : optimal.cpuMoe),
    };
    for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
    return out;
  }

  /** 0.26's check for another llama-server on 8080-8083 (double-loaded VRAM). */
  async _occupancyCheck(mode, ownPort) {
    if (mode === 'off') return;
    const ports = [8080, 8081, 8082, 8083].filter((p) => p !== ownPort);
    const isLlama = async (p) => {
      if (!(await isServerResponding(p, 800))) return false;
      try {
        return (await fetch(`http://127.0.0.1:${p}/props`, { signal: AbortSignal.timeout(800) })).ok;
      } catch {
        return false;
      }
    };
    const found = await Promise.all(ports.map(isLlama));
    const occupied = ports.filter((_, i) => found[i]);
    if (occupied.length === 0) return;
    const message = `Another llama-server appears to be running on port${occupied.length > 1 ? 's' : ''} ${occupied.join(', ')} - starting a second one may double-load VRAM`;
    if (mode === 'strict') {
      throw new ServerError(message, { occupiedPorts: occupied, suggestion: "Stop the other server, or set occupancyCheck: 'warn' or 'off' to proceed anyway" });
    }
    console.warn(`[genai-electron] ${message}`);
  }

  // ---------- stop / restart ----------

  /** Stops llama-server and leaves no process; resolves when it is gone. */
  async stop() {
    this._restartEpoch++;
    this._cancelPendingRestart();
    this._teardownWatchdog();
    if (this._stopping) return this._stopping;
    if (this._status === 'stopped') return undefined;
    this._stopping = this._doStop().finally(() => {
      this._stopping = undefined;
    });
    return this._stopping;
  }

  async _doStop() {
    this._generation++;
    const pid = this._pid;
    this._pid = undefined;
    this._port = 0;
    this._effectiveContextSize = undefined;
    this._effectiveParallelRequests = undefined;
    this._setStatus('stopping');
    this._log('Stopping server...');
    try {
      await this._native.stop();
    } catch (error) {
      this._setStatus('stopped');
      throw new ServerError(`Failed to stop server: ${error && error.message ? error.message : 'Unknown error'}`, { pid });
    }
    this._setStatus('stopped');
    this._log('Server stopped');
    this.systemInfo.clearCache();
    this._safeEmit('stopped', undefined);
    return undefined;
  }

  async restart() {
    if (!this._config) {
      throw new ServerError('Cannot restart: no previous configuration', { suggestion: 'Start the server first with a configuration' });
    }
    const config = this._config;
    if (this._status !== 'stopped') await this.stop();
    const info = await this.start(config);
    this._safeEmit('restarted', info);
    return info;
  }

  // ---------- auto-restart and watchdog (0.26) ----------

  _scheduleAutoRestart() {
    const config = this._config;
    if (!config || config.autoRestart !== true) return;
    const max = config.maxRestarts ?? 3;
    if (this._restartAttempts >= max) {
      this._log(`Auto-restart budget exhausted (${max} attempts) - staying crashed`, 'error');
      return;
    }
    this._restartAttempts++;
    const delay = 1000 * 2 ** (this._restartAttempts - 1);
    this._log(`Auto-restarting in ${delay}ms (attempt ${this._restartAttempts}/${max})`, 'warn');
    this._restartTimer = setTimeout(() => {
      this._restartTimer = undefined;
      if (this._status !== 'crashed') return;
      const epoch = this._restartEpoch;
      this._isAutoRestarting = true;
      const attempt = this.start(this._config);
      this._isAutoRestarting = false;
      attempt
        .then((info) => {
          if (epoch === this._restartEpoch && this._status === 'running') this._safeEmit('restarted', info);
        })
        .catch((error) => {
          if (epoch !== this._restartEpoch || (error instanceof ServerError && error.details && error.details.startupCancelled === true)) return;
          this._setStatus('crashed');
          this._log(`Auto-restart attempt ${this._restartAttempts} failed: ${error && error.message ? error.message : String(error)}`, 'error');
          this._scheduleAutoRestart();
        });
    }, delay);
  }

  _cancelPendingRestart() {
    if (this._restartTimer) clearTimeout(this._restartTimer);
    this._restartTimer = undefined;
  }

  _startWatchdog(config) {
    const interval = config.healthCheckInterval;
    if (interval === undefined || interval <= 0) return;
    this._teardownWatchdog();
    this._healthFailures = 0;
    this._watchdog = setInterval(() => void this._watchdogCheck(), interval);
    this._watchdog.unref();
  }

  async _watchdogCheck() {
    if (this._status !== 'running' || this._port === 0 || this._watchdogBusy) return;
    this._watchdogBusy = true;
    try {
      const healthy = (await this.getHealthStatus()) === 'ok';
      if (this._status !== 'running' || this._pid === undefined) return;
      if (healthy) {
        this._healthFailures = 0;
        this._safeEmit('health-check-ok', this.getInfo());
        return;
      }
      this._healthFailures++;
      this._safeEmit('health-check-failed', { consecutiveFailures: this._healthFailures, serverInfo: this.getInfo() });
      if (this._healthFailures >= 3) {
        this._log(`Watchdog: ${this._healthFailures} consecutive health-check failures - killing hung process`, 'error');
        this._teardownWatchdog();
        this._watchdogKill = true;
        // The exit report arrives as a crash; the child slot is emptied by this stop.
        await this._native.stop().catch(() => {
          this._watchdogKill = false;
        });
      }
    } finally {
      this._watchdogBusy = false;
    }
  }

  _teardownWatchdog() {
    if (this._watchdog) clearInterval(this._watchdog);
    this._watchdog = undefined;
  }
}

module.exports = { LlamaServerManager, BINARY_DIR_ENV, sizingHints, contextConstraint };
