'use strict';
/**
 * genai-electron's standalone system helpers (`getCPUInfo`, `getMemoryInfo`, `detectGPU`, ...),
 * answered by the same native probes as `systemInfo`.
 */

const os = require('node:os');
const binding = require('../binding.js');
const { nativeSync } = require('./errors.js');
const { SystemInfo, sizingFields } = require('./system-info.js');

/** `{ cores, model, architecture }` of this machine's CPU. */
function getCPUInfo() {
  const cpus = os.cpus();
  return { cores: cpus.length, model: (cpus[0] && cpus[0].model) || 'Unknown CPU', architecture: os.arch() };
}

/** Threads for llama.cpp on `cpuCores` cores (all of 2, one spare up to 8, two up to 16, else 85 %). */
function getRecommendedThreads(cpuCores) {
  const cores = cpuCores ?? getCPUInfo().cores;
  if (cores <= 2) return cores;
  if (cores <= 8) return cores - 1;
  if (cores <= 16) return cores - 2;
  return Math.floor(cores * 0.85);
}

/** Live RAM reading in bytes. */
const getMemoryInfo = () => SystemInfo.getInstance().getMemoryInfo();

/** Live GPU detection (`{ signal, timeoutMs }` as `systemInfo.getGPUInfo`). */
const detectGPU = (options) => SystemInfo.getInstance().getGPUInfo(options);

/**
 * Total VRAM of `gpu` in bytes, or null: 70 % of RAM for Apple (unified memory), the probed
 * total for NVIDIA and AMD cards, null otherwise.
 */
async function estimateVRAM(gpu, options) {
  if (!gpu || !gpu.available) return null;
  if (gpu.type === 'apple') return Math.floor(getMemoryInfo().total * 0.7);
  if (gpu.type !== 'nvidia' && gpu.type !== 'amd') return null;
  const probed = await detectGPU(options);
  return probed.available && probed.type === gpu.type && probed.vram ? probed.vram : null;
}

/** KV cache bytes per token of context for `modelInfo` (the arithmetic behind `canRunModel`). */
function estimateKVBytesPerToken(modelInfo, cacheTypeK = 'f16', cacheTypeV = 'f16') {
  return nativeSync(() => binding.systemKvBytesPerToken(sizingFields(modelInfo), cacheTypeK, cacheTypeV));
}

module.exports = { getCPUInfo, getRecommendedThreads, getMemoryInfo, detectGPU, estimateVRAM, estimateKVBytesPerToken };
