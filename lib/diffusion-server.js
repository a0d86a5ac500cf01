'use strict';
/**
 * `DiffusionServerManager` / `diffusionServer`: genai-electron's diffusion server API over the
 * native supervisor (src/diffusion/). Rust does the work (sd-server/sd-cli processes, the job queue,
 * the HTTP API); this class adapts it to JS: EventEmitter events, Promises, Buffers, onProgress.
 */

const { EventEmitter } = require('node:events');
const binding = require('../binding.js');
const { native, nativeSync, ServerError } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');
const { probeOptions } = require('./system-info.js');
const binaries = require('./binaries.js');

const BINARY_DIR_ENV = 'GENAI_ELECTRON_SD_BINARY_DIR';

/**
 * JSON for the native side; `undefined` values become `null` ("not given") instead of vanishing.
 * NaN and ±Infinity would also become `null` and silently mean "default"; they travel as strings
 * instead, so validation refuses them with a message naming the field.
 */
function toJson(obj) {
  return JSON.stringify(obj, (_key, value) => {
    if (value === undefined) return null;
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    return value;
  });
}

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

class DiffusionServerManager extends EventEmitter {
  constructor() {
    super();
    installExitHook();
    /** @type {Map<string, Function>} onProgress callbacks of generateImage() calls, by job id. */
    this._progress = new Map();
    this._config = undefined;
    this._keepAlive = undefined;
    /** Bumped by stop(), so a start() still provisioning its binary knows it was cancelled. */
    this._stopEpoch = 0;
    this._native = new binding.NativeDiffusionServer((json) => this._onNative(json));
  }

  /** Emits without letting a throwing listener break the caller (or the native callback). */
  _safeEmit(event, ...args) {
    try {
      this.emit(event, ...args);
    } catch {
      // A listener's exception is its own; the server's state is already consistent.
    }
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
        this._updateKeepAlive(ev.status);
        this._safeEmit('status', ev.status, ev.previous);
        break;
      case 'crashed':
        this._safeEmit('crashed', {
          exitCode: ev.exitCode === null ? undefined : ev.exitCode,
          signal: ev.signal === null ? undefined : ev.signal,
          stderr: ev.stderr,
          message: ev.message,
        });
        break;
      case 'binary-log':
        this._safeEmit('binary-log', { message: ev.message, level: ev.level });
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
    const provisioning = this._provisionBinary(config);
    if (provisioning) {
      const epoch = this._stopEpoch;
      await provisioning;
      if (this._stopEpoch !== epoch) {
        throw new ServerError('Server start was aborted by stop()', { code: 'START_ABORTED' });
      }
    }
    const info = await native(
      this._native.start(getUserDataPath(), toJson(config), probeOptions(), {
        binaryDir: process.env[BINARY_DIR_ENV],
        resultTtlMs: envNumber('IMAGE_RESULT_TTL_MS'),
        cleanupIntervalMs: envNumber('IMAGE_CLEANUP_INTERVAL_MS'),
      }),
    );
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
      const modelArgs = await binaries.diffusionModelArgs(config.modelId);
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
    const wasStopped = this._native.info().status === 'stopped';
    await native(this._native.stop());
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
    const { onProgress, ...request } = config;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError('onProgress must be a function');
    }
    const id = nativeSync(() => this._native.submit(toJson(request)));
    if (onProgress) this._progress.set(id, onProgress);
    let r;
    try {
      r = await native(this._native.wait(id));
    } catch (err) {
      if (err && err.details && err.details.code === 'GENERATION_CANCELLED') throw cancelledError(id);
      throw err;
    } finally {
      this._progress.delete(id);
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

  /** Cancels a queued or running generation; unknown id -> ServerError (GENERATION_NOT_FOUND). */
  async cancelImageGeneration(id) {
    nativeSync(() => this._native.cancel(String(id)));
  }

  getActiveGenerationId() {
    return this._native.activeGenerationId() ?? undefined;
  }

  getInfo() {
    return this._native.info();
  }

  getStatus() {
    return this._native.info().status;
  }

  async isHealthy() {
    return this._native.isHealthy();
  }

  getPort() {
    return this._native.info().port;
  }

  getPid() {
    return this._native.info().pid;
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

module.exports = { DiffusionServerManager, BINARY_DIR_ENV };
