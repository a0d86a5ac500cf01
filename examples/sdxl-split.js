#!/usr/bin/env node
'use strict';
/**
 * SDXL from split files (UNet + CLIP-L + CLIP-G + VAE) as one model. stable-diffusion.cpp cannot
 * detect SDXL from these four files alone; the library adds its own 98-byte hint file with `-m`
 * (see the README), so this works with the files as published.
 *
 *   node examples/sdxl-split.js <unet-repo> <unet-file> "a red fox in snow" out.png
 *
 * The UNet must use the original (LDM) tensor names (`input_blocks.*`, with or without
 * `model.diffusion_model.`), e.g. a UNet-only GGUF; a diffusers `unet/diffusion_pytorch_model`
 * file is refused before anything starts, because sd.cpp cannot load it this way.
 */
const fs = require('node:fs');
const { modelManager, diffusionServer, getPreset } = require('..');

async function main() {
  const [unetRepo, unetFile, prompt = 'a red fox in snow, photograph', out = 'sdxl-split.png'] = process.argv.slice(2);
  if (!unetRepo || !unetFile) {
    console.error('usage: node examples/sdxl-split.js <unet-repo> <unet-file> [prompt] [out.png]');
    process.exit(2);
  }
  // The sdxl-split preset: CLIP-L + CLIP-G (Comfy-Org) + the SDXL VAE, with the UNet given here.
  const preset = getPreset('sdxl-split', { repo: unetRepo, file: unetFile });
  const existing = (await modelManager.listModels('diffusion')).find((m) => m.name === preset.download.name);
  const model =
    existing ||
    (await modelManager.downloadModel({
      ...preset.download,
      onComponentStart: ({ role, filename, index, total }) => console.log(`[${index}/${total}] ${role}: ${filename}`),
    }));

  await diffusionServer.start({ modelId: model.id, port: 'auto' });
  try {
    const result = await diffusionServer.generateImage({ ...preset.generation, prompt });
    fs.writeFileSync(out, result.image);
    console.log(`saved ${out} (seed ${result.seed}, ${result.timeTaken} ms)`);
  } finally {
    await diffusionServer.stop();
  }
}

main().catch((err) => {
  console.error(`${err.name}: ${err.message}`);
  process.exit(1);
});
