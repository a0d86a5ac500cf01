'use strict';
/**
 * `systemInfo`: memory, CPU and GPU detection and `canRunModel`, implemented natively
 * (src/system/). This adapter only reads the environment on the JS thread and hands it down with
 * each call: GENAI_ELECTRON_SIMULATE_SYSTEM (a simulated machine file, see the README, "Simulating a machine"),
 * PATH (where nvidia-smi / rocm-smi are looked up) and GENAI_ELECTRON_NVML_LIBRARY.
 */

const path = require('node:path');
const binding = require('../binding.js');
const { native, nativeSync } = require('./errors.js');

const SIMULATE_ENV = 'GENAI_ELECTRON_SIMULATE_SYSTEM';
const NVML_ENV = 'GENAI_ELECTRON_NVML_LIBRARY';

function nonEmpty(value) {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** What the native probes need from the environment, read now. */
function probeOptions(extra) {
  const simulate = nonEmpty(process.env[SIMULATE_ENV]);
  const options = {
    simulateFile: simulate ? path.resolve(simulate) : undefined,
    searchPath: process.env.PATH,
    nvmlLibrary: nonEmpty(process.env[NVML_ENV]),
  };
  if (extra && extra.timeoutMs !== undefined) {
    const ms = Number(extra.timeoutMs);
    if (!Number.isFinite(ms) || ms <= 0) throw new TypeError('timeoutMs must be a positive number');
    options.timeoutMs = ms;
  }
  return options;
}

/**
 * The fields of a ModelInfo that `canRunModel` reads. Records can carry the whole GGUF header
 * (`ggufMetadata.raw`, tokenizer arrays included), which need not cross into native code.
 */
function sizingFields(modelInfo) {
  if (modelInfo === null || typeof modelInfo !== 'object') {
    throw new TypeError('canRunModel: modelInfo must be an object');
  }
  const sizes = (parts) => {
    if (Array.isArray(parts)) return parts.map((p) => ({ size: p && p.size }));
    if (parts && typeof parts === 'object') {
      return Object.fromEntries(Object.entries(parts).map(([role, p]) => [role, { size: p && p.size }]));
    }
    return undefined;
  };
  const gguf = modelInfo.ggufMetadata;
  return {
    size: modelInfo.size,
    components: sizes(modelInfo.components),
    shards: sizes(modelInfo.shards),
    ggufMetadata: gguf && typeof gguf === 'object' ? { block_count: gguf.block_count } : undefined,
  };
}

class SystemInfo {
  /** @returns {SystemInfo} the process-wide instance */
  static getInstance() {
    if (!SystemInfo._instance) SystemInfo._instance = new SystemInfo();
    return SystemInfo._instance;
  }

  /** CPU, memory, GPU and recommendations; cached 60 s unless `forceRefresh`. */
  async detect(forceRefresh = false) {
    return native(binding.systemDetect(Boolean(forceRefresh), probeOptions()));
  }

  /** Live RAM reading in bytes (never cached). */
  getMemoryInfo() {
    return nativeSync(() => binding.systemMemoryInfo(probeOptions()));
  }

  /** Live GPU reading (never cached); `options.timeoutMs` bounds each probe command. */
  async getGPUInfo(options) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new TypeError('getGPUInfo() options must be an object');
    }
    return native(binding.systemGpuInfo(probeOptions(options)));
  }

  /** Whether `modelInfo` fits this machine's RAM (see the contract's v0.5 rules). */
  async canRunModel(modelInfo, options) {
    return native(binding.systemCanRunModel(sizingFields(modelInfo), options, probeOptions()));
  }

  /** Forgets the cached `detect()` result. */
  clearCache() {
    binding.systemClearCache();
  }
}

module.exports = { SystemInfo, probeOptions, SIMULATE_ENV, NVML_ENV };
