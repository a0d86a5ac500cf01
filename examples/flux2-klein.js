#!/usr/bin/env node
'use strict';
/**
 * Download Flux 2 Klein 4B (DiT + Qwen3-4B text encoder + Flux 2 VAE) as one model, start the
 * diffusion server with its id alone, and generate one image.
 *
 *   node examples/flux2-klein.js "a lighthouse at dusk, oil painting" out.png
 *
 * Needs stable-diffusion.cpp's sd-server: set GENAI_ELECTRON_SD_BINARY_DIR to its folder (or put
 * it in <userData>/binaries/diffusion/). HF_ENDPOINT and HF_TOKEN are honoured. Interrupt and run
 * again: the download resumes where it stopped.
 */
const fs = require('node:fs');
const { modelManager, diffusionServer, getPreset, ModelNotFoundError } = require('..');

// The tested setup: Klein 4B Q8_0 DiT + the base Qwen3-4B text encoder (not the Instruct model) +
// Flux 2's own VAE (Flux 1's ae.safetensors does not fit), with Klein's settings (4 steps, cfg 1).
const PRESET = getPreset('flux-2-klein-4b-q80');

function mib(n) {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

async function ensureModel() {
  const id = PRESET.id; // a preset's id is the id its download gets
  try {
    return await modelManager.getModelInfo(id);
  } catch (err) {
    if (!(err instanceof ModelNotFoundError)) throw err;
  }
  let last = 0;
  return modelManager.downloadModel({
    ...PRESET.download,
    onComponentStart: ({ role, filename, index, total }) => console.log(`[${index}/${total}] ${role}: ${filename}`),
    onProgress: (downloaded, total, info) => {
      const now = Date.now();
      if (now - last < 1000 && downloaded !== total) return;
      last = now;
      const speed = info && info.bytesPerSecond ? `, ${mib(info.bytesPerSecond)}/s` : '';
      console.log(`  ${mib(downloaded)} of ${mib(total)}${speed}`);
    },
  });
}

async function main() {
  const prompt = process.argv[2] || 'a lighthouse at dusk, oil painting';
  const out = process.argv[3] || 'flux2-klein.png';
  const model = await ensureModel();
  console.log(`model ${model.id}: ${mib(model.size)} in ${Object.keys(model.components).join(', ')}`);

  await diffusionServer.start({ modelId: model.id, port: 'auto' });
  try {
    const result = await diffusionServer.generateImage({
      ...PRESET.generation,
      prompt,
      onProgress: (step, total, stage, pct) => console.log(`  ${stage} ${step}/${total} ${Math.round(pct ?? 0)}%`),
    });
    fs.writeFileSync(out, result.image);
    console.log(`saved ${out} (${result.width}x${result.height}, seed ${result.seed}, ${result.timeTaken} ms)`);
  } finally {
    await diffusionServer.stop();
  }
}

main().catch((err) => {
  console.error(`${err.name}: ${err.message}`);
  process.exit(1);
});
