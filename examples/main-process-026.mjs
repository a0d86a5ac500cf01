// An Electron main process written the way genai-electron 0.26's documentation shows it, with only
// the package name changed: ESM named imports, lifecycle cleanup, errors formatted for the UI,
// offload calibration, then a diffusion server with explicit residency settings.
//
//   MODEL_ID=flux-2-klein electron examples/main-process-026.mjs
//
// The model must already be downloaded (see examples/flux2-klein.js); sd-server is found through
// GENAI_ELECTRON_SD_BINARY_DIR or <userData>/binaries/diffusion/.

import { app } from 'electron';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  diffusionServer,
  modelManager,
  systemInfo,
  attachAppLifecycle,
  formatErrorForUI,
  DIFFUSION_BACKEND_DEFAULTS,
  DIFFUSION_CALIBRATION_DEFAULTS,
} from 'genai-electron-rs';

const MODEL_ID = process.env.MODEL_ID || 'flux-2-klein';
const SIZE = { width: 512, height: 512 };
const GENERATION = { steps: 4, cfgScale: 1, sampler: 'euler' };

// Stop the servers (and release sd-server) before Electron quits.
attachAppLifecycle(app, { diffusionServer });

diffusionServer.on('backend-status', ({ state, previous, reason, exit }) => {
  const why = reason ? ` (${reason}${exit ? `, code ${exit.code}, signal ${exit.signal}` : ''})` : '';
  console.log(`[diffusion] backend ${previous} -> ${state}${why}`);
});
diffusionServer.on('calibration-progress', (p) => {
  if (p.phase === 'sampling' || p.phase === 'done') console.log(`[calibration] ${p.phase} ${Math.round(p.overallPercent)}%`);
});
diffusionServer.on('crashed', ({ code, signal }) => console.error(`[diffusion] sd-server crashed: code ${code}, signal ${signal}`));

async function main() {
  await app.whenReady();

  const gpu = await systemInfo.getGPUInfo();
  console.log(`GPU: ${gpu.available ? `${gpu.name} (${gpu.vram} bytes)` : 'none'}`);
  const models = await modelManager.listModels('diffusion');
  if (!models.some((m) => m.id === MODEL_ID)) {
    throw new Error(`Model ${MODEL_ID} is not downloaded`);
  }

  // Find the fastest offload settings for this machine (the server must be stopped).
  const report = await diffusionServer.calibrate({
    modelId: MODEL_ID,
    sizes: [SIZE],
    generation: GENERATION,
    combos: DIFFUSION_CALIBRATION_DEFAULTS.combos.slice(0, 2),
    samples: 1,
  });
  const { label, ...flags } = report.recommended[`${SIZE.width}x${SIZE.height}`] ?? {};
  console.log(`calibration: recommended ${label ?? 'defaults'} of ${report.runs.length} run(s)`);

  const info = await diffusionServer.start({
    modelId: MODEL_ID,
    port: 'auto',
    usageMode: 'burst',
    idleTimeoutMs: DIFFUSION_BACKEND_DEFAULTS.idleTimeoutMs,
    jobActivityTimeoutMs: 120_000,
    startupTimeout: 60_000,
    allowedOrigins: [],
    ...flags,
  });
  console.log(`diffusion server on port ${info.port}, backend ${info.backend.state}`);

  const result = await diffusionServer.generateImage({
    prompt: 'a lighthouse on a rocky coast at sunset',
    ...SIZE,
    ...GENERATION,
    seed: 42,
    onProgress: (step, total, stage, pct) => {
      if (stage === 'decoding') console.log(`[image] decoding ${Math.round(pct ?? 0)}%`);
    },
  });
  const out = path.join(app.getPath('userData'), 'lighthouse.png');
  await writeFile(out, result.image);
  console.log(`saved ${out} (${result.width}x${result.height}, seed ${result.seed}, ${result.timeTaken} ms)`);
  console.log(`backend after the image: ${diffusionServer.getBackendInfo().state}`);

  // Free sd-server's memory now rather than after idleTimeoutMs.
  await diffusionServer.releaseBackend({ reason: 'explicit' });
  app.quit();
}

main().catch((error) => {
  const ui = formatErrorForUI(error);
  console.error(`${ui.title}: ${ui.message}\n${ui.remediation}`);
  app.exit(1);
});
