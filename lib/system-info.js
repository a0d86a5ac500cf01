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

/** GGUF keys (of `raw`, after `<architecture>.`) that the KV and MoE sizing read. */
const RAW_ARCH_FIELDS = ['attention.head_count_kv', 'attention.key_length', 'expert_count', 'expert_feed_forward_length'];
const GGUF_FIELDS = [
  'architecture',
  'block_count',
  'context_length',
  'attention_head_count',
  'attention_head_count_kv',
  'attention_key_length',
  'embedding_length',
  'expert_count',
  'expert_feed_forward_length',
  'expert_weights_bytes',
];

/** A BigInt (as a raw GGUF parse holds) as a number; anything else unchanged. */
function plain(value) {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(plain);
  return value;
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
  let ggufMetadata;
  if (gguf && typeof gguf === 'object') {
    ggufMetadata = {};
    for (const f of GGUF_FIELDS) if (gguf[f] !== undefined) ggufMetadata[f] = plain(gguf[f]);
    const raw = gguf.raw && typeof gguf.raw === 'object' ? gguf.raw : undefined;
    if (raw) {
      const arch = gguf.architecture;
      const keys = ['general.parameter_count', ...(arch ? RAW_ARCH_FIELDS.map((f) => `${arch}.${f}`) : [])];
      ggufMetadata.raw = Object.fromEntries(keys.filter((k) => raw[k] !== undefined).map((k) => [k, plain(raw[k])]));
    }
  }
  return {
    size: plain(modelInfo.size),
    components: sizes(modelInfo.components),
    shards: sizes(modelInfo.shards),
    ggufMetadata,
  };
}

/** Rejects with `signal.reason` when `signal` aborts before `promise` settles. */
function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function checkSignal(options) {
  const signal = options && options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
  return signal;
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

  /**
   * Live GPU reading (never cached); `options.timeoutMs` bounds each probe command and
   * `options.signal` rejects the call with its reason (a probe already running finishes within
   * its timeout in the background; its result is dropped).
   */
  async getGPUInfo(options) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new TypeError('getGPUInfo() options must be an object');
    }
    const signal = checkSignal(options);
    signal?.throwIfAborted();
    return abortable(native(binding.systemGpuInfo(probeOptions(options))), signal);
  }

  /**
   * Whether `modelInfo` fits this machine, by genai-electron 0.26's rules: the KV-cache floor,
   * MoE expert weights, and the resolved placement when `contextSize` and `gpuLayers` are given.
   */
  async canRunModel(modelInfo, options) {
    return native(binding.systemCanRunModel(sizingFields(modelInfo), options, probeOptions()));
  }

  /**
   * genai-electron refreshes Windows' available-memory figure here (PowerShell). This library
   * reads available memory from the OS on every call, on every platform, so there is nothing
   * to refresh: always `'not-required'`.
   */
  async refreshMemoryTelemetry(options) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new TypeError('refreshMemoryTelemetry() options must be an object');
    }
    checkSignal(options);
    return 'not-required';
  }

  /**
   * genai-electron 0.26's llama-server sizing for `modelInfo` on this machine: threads,
   * parallelRequests, contextSize, gpuLayers, and when needed cpuMoe or a q8_0 KV cache with
   * flash attention. `hints` are the config fields the caller pins.
   */
  async getOptimalConfig(modelInfo, hints = {}) {
    if (hints === null || typeof hints !== 'object') throw new TypeError('getOptimalConfig: hints must be an object');
    try {
      return await native(binding.systemOptimalConfig(JSON.stringify(sizingFields(modelInfo)), JSON.stringify(hints), probeOptions()));
    } catch (error) {
      throw require('./llama-server.js').contextConstraint(error);
    }
  }

  /** Forgets the cached `detect()` result. */
  clearCache() {
    binding.systemClearCache();
  }
}

module.exports = { SystemInfo, probeOptions, sizingFields, SIMULATE_ENV, NVML_ENV };
