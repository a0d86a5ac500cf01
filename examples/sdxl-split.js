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
const { modelManager, diffusionServer } = require('..');

async function main() {
  const [unetRepo, unetFile, prompt = 'a red fox in snow, photograph', out = 'sdxl-split.png'] = process.argv.slice(2);
  if (!unetRepo || !unetFile) {
    console.error('usage: node examples/sdxl-split.js <unet-repo> <unet-file> [prompt] [out.png]');
    process.exit(2);
  }
  const name = `SDXL split ${unetFile}`;
  const existing = (await modelManager.listModels('diffusion')).find((m) => m.name === name);
  const model =
    existing ||
    (await modelManager.downloadModel({
      source: 'huggingface',
      repo: unetRepo,
      file: unetFile,
      name,
      type: 'diffusion',
      modelDirectory: 'sdxl-split',
      components: [
        { role: 'clip_l', source: 'huggingface', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_l.safetensors' },
        { role: 'clip_g', source: 'huggingface', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_g.safetensors' },
        { role: 'vae', source: 'huggingface', repo: 'stabilityai/sdxl-vae', file: 'sdxl_vae.safetensors' },
      ],
      onComponentStart: ({ role, filename, index, total }) => console.log(`[${index}/${total}] ${role}: ${filename}`),
    }));

  await diffusionServer.start({ modelId: model.id, port: 'auto' });
  try {
    const result = await diffusionServer.generateImage({ prompt, width: 1024, height: 1024, steps: 20, cfgScale: 7 });
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
