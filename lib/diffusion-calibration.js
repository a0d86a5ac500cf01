'use strict';
/**
 * `diffusionServer.calibrate()`: times each optimisation-flag combo at each size and recommends
 * one per size, with genai-electron 0.26's algorithm (warm-up, samples, medians, stage timings,
 * VRAM peak/idle, the fewest-forced-flags-within-tolerance rule). The images themselves go
 * through the native server like any other (`runImage`); this module only orders them.
 */

const { ServerError } = require('./errors.js');
const { DIFFUSION_CALIBRATION_DEFAULTS: CALIBRATION_DEFAULTS } = require('./constants.js');

const VRAM_SAMPLE_INTERVAL_MS = 1000;
const FLAG_KEYS = ['clipOnCpu', 'vaeOnCpu', 'offloadToCpu', 'diffusionFlashAttention'];

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function forcedFlags(combo) {
  return FLAG_KEYS.filter((k) => combo[k] !== undefined).length;
}

/**
 * Per size (`'WxH'`): among the ok runs within `tolerancePct` of the fastest, the combo that
 * forces the fewest flags, then the fastest.
 */
function pickRecommended(runs, tolerancePct) {
  const bySize = new Map();
  for (const run of runs) {
    if (run.status !== 'ok' || run.timeTakenMs === undefined) continue;
    const key = `${run.size.width}x${run.size.height}`;
    if (!bySize.has(key)) bySize.set(key, []);
    bySize.get(key).push(run);
  }
  const recommended = {};
  for (const [key, ok] of bySize) {
    const fastest = Math.min(...ok.map((r) => r.timeTakenMs));
    const limit = fastest * (1 + tolerancePct / 100);
    const winner = ok
      .filter((r) => r.timeTakenMs <= limit)
      .sort((a, b) => forcedFlags(a.combo) - forcedFlags(b.combo) || a.timeTakenMs - b.timeTakenMs)[0];
    recommended[key] = winner.combo;
  }
  return recommended;
}

function abortError(runs) {
  return new ServerError('Calibration aborted', {
    code: 'CALIBRATION_ABORTED',
    runs: [...runs],
    suggestion: 'Partial results are available in error.details.runs',
  });
}

function classify(error) {
  const message = error instanceof Error ? error.message : String(error);
  const d = error && typeof error.details === 'object' && error.details ? error.details : {};
  const stderr = typeof d.stderr === 'string' ? d.stderr : typeof d.stderrTail === 'string' ? d.stderrTail : '';
  const oom = CALIBRATION_DEFAULTS.oomPatterns.some((p) => p.test(`${message}\n${stderr}`));
  return { status: oom ? 'oom' : 'error', message };
}

function validateSizes(sizes) {
  if (!Array.isArray(sizes) || sizes.length === 0) {
    throw new ServerError('Calibration requires at least one size in config.sizes', {
      suggestion: 'Pass the size(s) your app generates at, e.g. sizes: [{ width: 768, height: 768 }]',
    });
  }
  for (const size of sizes) {
    const { width, height } = size ?? {};
    if (![width, height].every((n) => Number.isInteger(n) && n > 0 && n % 64 === 0)) {
      throw new ServerError(
        `Invalid calibration size ${width}x${height}: dimensions must be positive multiples of 64`,
        { suggestion: 'Use sd.cpp-compatible dimensions, e.g. 512x512, 768x768, 512x1024' },
      );
    }
  }
}

/**
 * Samples free VRAM every second during a run (NVIDIA through NVML, via `systemInfo.getGPUInfo`):
 * peak use = total - lowest free seen; idle use = total - free after the run's release.
 */
async function vramSampler(systemInfo) {
  let gpu;
  try {
    gpu = await systemInfo.getGPUInfo();
  } catch {
    return undefined;
  }
  if (!gpu || gpu.vramAvailable === undefined || !(gpu.vram > 0)) return undefined;
  const total = gpu.vram;
  const read = async () => {
    try {
      const g = await systemInfo.getGPUInfo();
      return g && Number.isFinite(g.vramAvailable) ? g.vramAvailable : undefined;
    } catch {
      return undefined;
    }
  };
  let timer;
  let min;
  let idle;
  let trusted = true;
  const sample = async () => {
    const a = await read();
    if (a === undefined) trusted = false;
    else if (min === undefined || a < min) min = a;
  };
  return {
    async begin() {
      min = undefined;
      idle = undefined;
      trusted = true;
      await sample();
      timer = setInterval(() => void sample(), VRAM_SAMPLE_INTERVAL_MS);
      timer.unref?.();
    },
    async end() {
      clearInterval(timer);
      await sample();
    },
    async measureIdle() {
      idle = await read();
    },
    result() {
      if (!trusted || min === undefined || idle === undefined) return {};
      return { vramPeakBytes: Math.max(0, total - min), vramIdleBytes: Math.max(0, total - idle) };
    },
    dispose() {
      clearInterval(timer);
    },
  };
}

/**
 * Runs a calibration. `host` gives what it needs from the manager:
 *   modelInfo(id), canRun(modelInfo), systemInfo, emit(progress), runImage(genConfig, combo,
 *   onPercent) -> { timeTaken, stageMs }, release() (reason 'calibration'), orchestrator?.
 */
async function calibrate(config, host) {
  const defaults = CALIBRATION_DEFAULTS;
  if (config === null || typeof config !== 'object') {
    throw new TypeError('calibrate() expects a DiffusionCalibrationConfig object');
  }
  validateSizes(config.sizes);
  const sizes = config.sizes;
  const gen = config.generation ?? {};
  const samples = Math.max(1, Math.floor(config.samples ?? defaults.samples));
  const usageMode = config.usageMode ?? defaults.usageMode;
  const seed = config.seed ?? defaults.seed;
  const prompt = config.prompt ?? defaults.prompt;
  const { signal } = config;
  const runs = [];
  if (signal?.aborted) throw abortError(runs);
  const checkAbort = () => {
    if (signal?.aborted) throw abortError(runs);
  };

  const onAbort = () => host.cancelCurrent();
  signal?.addEventListener('abort', onAbort);
  let comboCount = 0;
  let last = 0;
  let succeeded = false;
  let sampler;
  const emit = (p) => {
    try {
      config.onProgress?.(p);
    } catch {
      // A throwing onProgress must not end the calibration.
    }
    host.emit(p);
  };
  try {
    const modelInfo = await host.modelInfo(config.modelId);
    let combos = (config.combos && config.combos.length > 0 ? config.combos : defaults.combos).map((c) => ({ ...c }));
    const skippedCombos = [];
    if (defaults.sd35LargePattern.test(modelInfo.id) || defaults.sd35LargePattern.test(modelInfo.name ?? '')) {
      combos = combos.filter((combo) => {
        if (combo.clipOnCpu !== true) return true;
        skippedCombos.push({
          combo,
          reason: 'SD3.5-Large produces garbled output with --clip-on-cpu (leejet/stable-diffusion.cpp#1578)',
        });
        return false;
      });
    }
    if (combos.length === 0) {
      throw new ServerError('No offload combos left to benchmark after SD3.5-Large filtering', {
        skippedCombos,
        suggestion: 'Provide combos without clipOnCpu: true for this model',
      });
    }
    comboCount = combos.length;
    const totalUnits = combos.length * (1 + samples * sizes.length);
    let done = 0;
    const overall = (fraction = 0) => {
      last = Math.max(last, Math.min(100, ((done + fraction) / totalUnits) * 100));
      return last;
    };
    emit({ phase: 'preparing', comboIndex: 0, comboCount, sizeIndex: 0, sizeCount: sizes.length, overallPercent: 0 });
    await host.prepare(modelInfo, { threads: gen.threads, batchSize: gen.batchSize });
    checkAbort();
    await host.orchestrator?.waitForReload?.();
    await host.orchestrator?.offloadLLM?.();
    sampler = await vramSampler(host.systemInfo);

    const image = (size, combo, onPercent) =>
      host.runImage(
        { prompt, width: size.width, height: size.height, steps: gen.steps, cfgScale: gen.cfgScale, seed, sampler: gen.sampler },
        combo,
        onPercent,
      );

    for (let comboIndex = 0; comboIndex < combos.length; comboIndex++) {
      const combo = combos[comboIndex];
      const base = { comboIndex, comboCount, combo, sizeCount: sizes.length };
      checkAbort();
      emit({ phase: 'warmup', ...base, sizeIndex: 0, size: sizes[0], overallPercent: overall() });
      let warmupFailure;
      try {
        if (usageMode === 'single') {
          await host.release();
          checkAbort();
        }
        await image(sizes[0], combo, (pct) =>
          emit({ phase: 'warmup', ...base, sizeIndex: 0, size: sizes[0], generationPercent: pct, overallPercent: overall(pct / 100) }),
        );
      } catch (error) {
        checkAbort();
        warmupFailure = classify(error);
      } finally {
        if (usageMode === 'single') await host.release();
      }
      done++;
      for (let sizeIndex = 0; sizeIndex < sizes.length; sizeIndex++) {
        const size = sizes[sizeIndex];
        const samplesMs = [];
        const stages = [];
        const vram = [];
        let resolved;
        let failure;
        if (sizeIndex === 0 && warmupFailure) {
          failure = warmupFailure;
          done += samples;
        } else {
          for (let sample = 1; sample <= samples; sample++) {
            checkAbort();
            const at = { phase: 'sampling', ...base, sizeIndex, size, sample, sampleCount: samples };
            emit({ ...at, overallPercent: overall() });
            try {
              if (usageMode === 'single') {
                await host.release();
                checkAbort();
              }
              let r;
              await sampler?.begin();
              try {
                r = await image(size, combo, (pct) => emit({ ...at, generationPercent: pct, overallPercent: overall(pct / 100) }));
              } finally {
                await sampler?.end();
                if (usageMode === 'single') await host.release();
                await sampler?.measureIdle();
              }
              samplesMs.push(r.timeTaken);
              stages.push(r.stageMs);
              vram.push(sampler?.result() ?? {});
              resolved = r.flags;
              done++;
            } catch (error) {
              checkAbort();
              failure = classify(error);
              done += samples - sample + 1;
              break;
            }
          }
        }
        const run = { size, combo, status: failure ? failure.status : 'ok' };
        if (resolved) run.resolved = resolved;
        if (samplesMs.length > 0) run.samplesMs = samplesMs;
        if (failure) {
          run.error = failure.message;
        } else {
          const m = median(samplesMs);
          run.timeTakenMs = m;
          let best = 0;
          samplesMs.forEach((v, i) => {
            if (Math.abs(v - m) < Math.abs(samplesMs[best] - m)) best = i;
          });
          if (stages[best] && Object.keys(stages[best]).length > 0) run.stageMs = stages[best];
          if (vram[best]?.vramPeakBytes !== undefined) run.vramPeakBytes = vram[best].vramPeakBytes;
          if (vram[best]?.vramIdleBytes !== undefined) run.vramIdleBytes = vram[best].vramIdleBytes;
        }
        runs.push(run);
      }
      if (usageMode === 'burst') await host.release();
    }

    const machine = {};
    try {
      const gpu = await host.systemInfo.getGPUInfo();
      machine.gpuType = gpu.type;
      machine.gpuName = gpu.name;
      machine.vramBytes = gpu.vram;
      machine.vramAvailableBytes = gpu.vramAvailable;
    } catch {
      // The report is still useful without the machine's GPU description.
    }
    const report = {
      machine,
      modelId: config.modelId,
      steps: gen.steps,
      cfgScale: gen.cfgScale,
      sampler: gen.sampler,
      samples,
      usageMode,
      policyVersion: defaults.policyVersion,
      runs,
      recommended: pickRecommended(runs, defaults.tieTolerancePct),
    };
    if (skippedCombos.length > 0) report.skippedCombos = skippedCombos;
    succeeded = true;
    return report;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    sampler?.dispose();
    await host.finish();
    const end = {
      comboIndex: Math.max(0, comboCount - 1),
      comboCount,
      sizeIndex: Math.max(0, sizes.length - 1),
      sizeCount: sizes.length,
    };
    if (host.orchestrator) {
      emit({ phase: 'restoring-llm', ...end, overallPercent: succeeded ? 100 : last });
      await host.orchestrator.reloadLLM?.();
    }
    if (succeeded) emit({ phase: 'done', ...end, overallPercent: 100 });
  }
}

module.exports = { calibrate, pickRecommended };
