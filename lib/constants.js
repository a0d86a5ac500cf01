'use strict';
/**
 * Constants of the genai-electron 0.26 contract, with 0.26's values. Frozen (deeply): the 0.26
 * declarations mark every one `readonly`, and a shared default mutated by one caller would change
 * every other caller's behaviour.
 */

function deepFreeze(value) {
  if (value && typeof value === 'object' && !(value instanceof RegExp) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const DEFAULT_PORTS = deepFreeze({ llama: 8080, diffusion: 8081 });

const DIFFUSION_COMPONENT_FLAGS = deepFreeze({
  diffusion_model: '--diffusion-model',
  clip_l: '--clip_l',
  clip_g: '--clip_g',
  t5xxl: '--t5xxl',
  llm: '--llm',
  llm_vision: '--llm_vision',
  vae: '--vae',
});

const DIFFUSION_COMPONENT_ORDER = deepFreeze([
  'diffusion_model',
  'clip_l',
  'clip_g',
  't5xxl',
  'llm',
  'llm_vision',
  'vae',
]);

/** Milliseconds. */
const DEFAULT_TIMEOUTS = deepFreeze({
  download: 300000,
  serverStart: 120000,
  serverStop: 10000,
  healthCheck: 5000,
});

/** Free-VRAM headroom below which the CLIP / VAE encoders are kept on the CPU. */
const DIFFUSION_VRAM_THRESHOLDS = deepFreeze({
  clipOnCpuHeadroomBytes: 6 * 1024 ** 3,
  vaeOnCpuHeadroomBytes: 2 * 1024 ** 3,
  modelOverheadMultiplier: 1.2,
});

/** Residency and job-polling defaults of the diffusion backend (milliseconds). */
const DIFFUSION_BACKEND_DEFAULTS = deepFreeze({
  idleTimeoutMs: 300000,
  jobPollIntervalMs: 200,
  jobRequestTimeoutMs: 10000,
  readyTimeoutMs: DEFAULT_TIMEOUTS.serverStart,
  stopTimeoutMs: DEFAULT_TIMEOUTS.serverStop,
  maxTransientPollFailures: 3,
  jobActivityTimeoutMs: 600000,
});

/** Output patterns that mark an out-of-memory failure of sd.cpp / llama.cpp. */
const OOM_PATTERNS = [
  /out of memory/i,
  /cudaMalloc/i,
  /CUDA error/i,
  /ErrorOutOfDeviceMemory/i,
  /failed to allocate/i,
  /not enough memory/i,
];

/** What `diffusionServer.calibrate()` measures when the caller does not say. */
const DIFFUSION_CALIBRATION_DEFAULTS = deepFreeze({
  combos: [
    { label: 'auto' },
    { label: 'clip-gpu', clipOnCpu: false },
    { label: 'clip-gpu+offload', clipOnCpu: false, offloadToCpu: true },
    { label: 'offload', offloadToCpu: true },
    { label: 'all-resident', clipOnCpu: false, vaeOnCpu: false, offloadToCpu: false },
    { label: 'max-savings', clipOnCpu: true, vaeOnCpu: true, offloadToCpu: true },
  ],
  samples: 2,
  seed: 42,
  prompt: 'a photograph of a lighthouse on a rocky coast at sunset, detailed',
  tieTolerancePct: 5,
  sd35LargePattern: /(?:sd|stable[-_.\s]?diffusion)[-_.\s]?3[-_.\s]?5.*?large/i,
  oomPatterns: OOM_PATTERNS,
  policyVersion: 'diffusion-offload-v2',
  usageMode: 'single',
});

/** Bytes per KV-cache element for each llama.cpp cache type (block formats: bytes per block / 32). */
const KV_CACHE_BYTES_PER_ELEMENT = deepFreeze({
  f16: 2,
  bf16: 2,
  q8_0: 34 / 32,
  q5_0: 22 / 32,
  q5_1: 24 / 32,
  q4_0: 18 / 32,
  q4_1: 20 / 32,
  iq4_nl: 18 / 32,
});

/** `[upper bound, step]`: context sizes are floored to the step of the first bound they fit. */
const CONTEXT_GRANULARITY_LADDER = deepFreeze([
  [2048, 128],
  [4096, 256],
  [8192, 512],
  [16384, 1024],
  [32768, 2048],
  [Infinity, 4096],
]);

/** File-name substrings (lower case) of models that emit reasoning. */
const REASONING_MODEL_PATTERNS = deepFreeze(['qwen3', 'deepseek-r1', 'gpt-oss']);

/** Sizing factors behind canRunModel's 0.26 rules (not exported from the package root). */
const KV_SIZING = deepFreeze({
  floorContextTokens: 4096,
  gpuWeightsOverhead: 1.1,
  cpuWeightsOverhead: 1.2,
  osRamMarginBytes: 2 * 1024 ** 3,
  computeBufferBytes: 1024 ** 3,
  moeExpertTotalRamFraction: 0.6,
});

module.exports = {
  DEFAULT_PORTS,
  DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER,
  DEFAULT_TIMEOUTS,
  DIFFUSION_VRAM_THRESHOLDS,
  DIFFUSION_BACKEND_DEFAULTS,
  DIFFUSION_CALIBRATION_DEFAULTS,
  KV_CACHE_BYTES_PER_ELEMENT,
  CONTEXT_GRANULARITY_LADDER,
  REASONING_MODEL_PATTERNS,
  KV_SIZING,
};
