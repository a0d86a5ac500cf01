'use strict';
/** `modelManager`: a thin adapter over the native storage and download functions. */

const binding = require('../binding.js');
const { native } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');
const download = require('./download.js');

const STRATEGIES = ['local-only', 'remote-only', 'local-remote', 'remote-local'];

/**
 * The return value of a download callback is ignored, so a Promise it returns (an `async`
 * onProgress) must not reject unobserved: an unhandled rejection ends the process by default.
 */
function ignoreRejections(fn) {
  if (typeof fn !== 'function') return fn;
  return function callback(...args) {
    const r = fn.apply(this, args);
    if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
      Promise.resolve(r).catch(() => {});
    }
    return r;
  };
}

function requireId(id) {
  if (typeof id !== 'string') throw new TypeError('Model id must be a string');
  return id;
}

class ModelManager {
  /** @returns {ModelManager} the process-wide instance */
  static getInstance() {
    if (!ModelManager._instance) ModelManager._instance = new ModelManager();
    return ModelManager._instance;
  }

  async initialize() {
    await native(binding.storageInitialize(getUserDataPath()));
  }

  async listModels(type) {
    if (type !== undefined && type !== 'llm' && type !== 'diffusion') {
      throw new TypeError(`Invalid model type: ${JSON.stringify(type)} (expected "llm" or "diffusion")`);
    }
    return native(binding.listModels(getUserDataPath(), type));
  }

  async getModelInfo(id) {
    return native(binding.getModelInfo(getUserDataPath(), requireId(id)));
  }

  async deleteModel(id) {
    await native(binding.deleteModel(getUserDataPath(), requireId(id)));
  }

  async verifyModel(id) {
    return native(binding.verifyModel(getUserDataPath(), requireId(id)));
  }

  async updateModelMetadata(id, options = {}) {
    const source = options && options.source;
    // Same token/endpoint rules as downloads: options, else HF_TOKEN / HF_ENDPOINT.
    const token = (options && options.hfToken) || process.env.HF_TOKEN || undefined;
    const endpoint = process.env.HF_ENDPOINT || undefined;
    if (source !== undefined && !STRATEGIES.includes(source)) {
      // Let the native side produce the contract's DownloadError for unknown strategies.
      return native(binding.updateModelMetadata(getUserDataPath(), requireId(id), String(source), token, endpoint));
    }
    return native(binding.updateModelMetadata(getUserDataPath(), requireId(id), source, token, endpoint));
  }

  /** Downloads a model (single-file, multi-component or sharded) and returns its record. */
  async downloadModel(config) {
    if (config !== null && typeof config === 'object' && !Array.isArray(config)) {
      const guarded = { ...config };
      if ('onProgress' in config) guarded.onProgress = ignoreRejections(config.onProgress);
      if ('onComponentStart' in config) guarded.onComponentStart = ignoreRejections(config.onComponentStart);
      return download.downloadModel(guarded);
    }
    return download.downloadModel(config);
  }

  /** Cancels every download in progress in this process. */
  cancelDownload() {
    download.cancelDownload();
  }

  /** True while any downloadModel() call of this process has not settled. */
  isDownloading() {
    return download.isDownloading();
  }

  async getModelLayerCount(id) {
    return (await native(binding.getModelFacts(getUserDataPath(), requireId(id)))).layerCount;
  }

  async getModelContextLength(id) {
    return (await native(binding.getModelFacts(getUserDataPath(), requireId(id)))).contextLength;
  }

  async getModelArchitecture(id) {
    return (await native(binding.getModelFacts(getUserDataPath(), requireId(id)))).architecture;
  }
}

module.exports = { ModelManager };
