'use strict';
/**
 * Presets: tested model setups, each a ready `DownloadConfig` plus the generation (or server)
 * settings that fit it. A preset's id is the id its download gets (derived from `name`), so
 * `pull <id>` is followed by `generate <id>`; `sdxl-split` is the exception (its name carries the
 * UNet's file). Repos and file names are the ones the project's investigations ran;
 * `approxBytes` are the published approximate sizes, null where no size was recorded (a download
 * learns the exact size from the server before it starts, and Hugging Face LFS files are verified
 * against their published SHA-256, so no checksum is pinned here).
 */

const KLEIN_TEXT_ENCODER = {
  role: 'llm',
  source: 'huggingface',
  // The base Qwen3-4B (not the Instruct-2507 model): its hidden width fits Klein 4B's text input.
  repo: 'unsloth/Qwen3-4B-GGUF',
  file: 'Qwen3-4B-Q4_0.gguf',
};
const KLEIN_VAE = {
  role: 'vae',
  source: 'huggingface',
  // Flux 2's own VAE (32 latent channels); Flux 1's ae.safetensors fails with shape errors.
  repo: 'Comfy-Org/flux2-dev',
  file: 'split_files/vae/flux2-vae.safetensors',
};
// Klein is distilled: 4 steps at cfg 1.
const KLEIN_GENERATION = { width: 768, height: 768, steps: 4, cfgScale: 1, sampler: 'euler' };

function klein(quant, ditBytes) {
  return {
    id: `flux-2-klein-4b-${quant.toLowerCase().replace('_', '')}`,
    name: `Flux 2 Klein 4B ${quant}`,
    type: 'diffusion',
    description: `Flux 2 Klein 4B text-to-image: ${quant} DiT + Qwen3-4B Q4_0 text encoder + Flux 2 VAE.`,
    files: [
      { role: 'diffusion_model', repo: 'leejet/FLUX.2-klein-4B-GGUF', file: `flux-2-klein-4b-${quant}.gguf`, approxBytes: ditBytes },
      { role: 'llm', repo: KLEIN_TEXT_ENCODER.repo, file: KLEIN_TEXT_ENCODER.file, approxBytes: 2.5e9 },
      { role: 'vae', repo: KLEIN_VAE.repo, file: KLEIN_VAE.file, approxBytes: 335e6 },
    ],
    download: {
      source: 'huggingface',
      repo: 'leejet/FLUX.2-klein-4B-GGUF',
      file: `flux-2-klein-4b-${quant}.gguf`,
      name: `Flux 2 Klein 4B ${quant}`,
      type: 'diffusion',
      // Both quantisations share one folder, so the text encoder and VAE are stored once.
      modelDirectory: 'flux-2-klein',
      components: [KLEIN_TEXT_ENCODER, KLEIN_VAE],
    },
    generation: KLEIN_GENERATION,
  };
}

const SDXL_GENERATION = { width: 1024, height: 1024, steps: 20, cfgScale: 7, sampler: 'euler_a' };

const PRESETS = [
  klein('Q8_0', 4.3e9),
  klein('Q4_0', 2.5e9),
  {
    id: 'sdxl-base',
    name: 'SDXL base',
    type: 'diffusion',
    description: 'Stable Diffusion XL base 1.0 as one checkpoint file (loaded with -m).',
    files: [{ role: 'model', repo: 'stabilityai/stable-diffusion-xl-base-1.0', file: 'sd_xl_base_1.0.safetensors', approxBytes: null }],
    download: {
      source: 'huggingface',
      repo: 'stabilityai/stable-diffusion-xl-base-1.0',
      file: 'sd_xl_base_1.0.safetensors',
      name: 'SDXL base',
      type: 'diffusion',
    },
    generation: SDXL_GENERATION,
  },
  {
    id: 'sdxl-split',
    name: 'SDXL split',
    type: 'diffusion',
    description:
      'SDXL from separate files: a UNet you choose + CLIP-L + CLIP-G + SDXL VAE. Started with the hint-file workaround. ' +
      'The UNet must use original (LDM) tensor names (input_blocks.*); a diffusers unet/diffusion_pytorch_model file cannot load this way.',
    // The UNet is not fixed: pass it as getPreset('sdxl-split', { repo, file }).
    requires: 'unet',
    files: [
      { role: 'diffusion_model', repo: null, file: null, approxBytes: null },
      { role: 'clip_l', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_l.safetensors', approxBytes: 246e6 },
      { role: 'clip_g', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_g.safetensors', approxBytes: 1.39e9 },
      { role: 'vae', repo: 'stabilityai/sdxl-vae', file: 'sdxl_vae.safetensors', approxBytes: null },
    ],
    download: {
      source: 'huggingface',
      repo: null,
      file: null,
      name: 'SDXL split',
      type: 'diffusion',
      modelDirectory: 'sdxl-split',
      components: [
        { role: 'clip_l', source: 'huggingface', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_l.safetensors' },
        { role: 'clip_g', source: 'huggingface', repo: 'Comfy-Org/stable-diffusion-3.5-fp8', file: 'text_encoders/clip_g.safetensors' },
        { role: 'vae', source: 'huggingface', repo: 'stabilityai/sdxl-vae', file: 'sdxl_vae.safetensors' },
      ],
    },
    generation: SDXL_GENERATION,
  },
  {
    id: 'qwen3-4b-q40',
    name: 'Qwen3 4B Q4_0',
    type: 'llm',
    description: 'Qwen3 4B chat model (thinking and non-thinking modes) for llamaServer; the same file as the Flux 2 Klein text encoder.',
    files: [{ role: 'model', repo: 'unsloth/Qwen3-4B-GGUF', file: 'Qwen3-4B-Q4_0.gguf', approxBytes: 2.5e9 }],
    download: { source: 'huggingface', repo: 'unsloth/Qwen3-4B-GGUF', file: 'Qwen3-4B-Q4_0.gguf', name: 'Qwen3 4B Q4_0', type: 'llm' },
    server: { contextSize: 8192 },
  },
  {
    id: 'qwen25-05b-instruct-q4km',
    name: 'Qwen2.5 0.5B Instruct Q4_K_M',
    type: 'llm',
    description: 'A small, fast chat model for llamaServer: runs on any machine, for trials and simple tasks.',
    files: [{ role: 'model', repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF', file: 'qwen2.5-0.5b-instruct-q4_k_m.gguf', approxBytes: null }],
    download: {
      source: 'huggingface',
      repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF',
      file: 'qwen2.5-0.5b-instruct-q4_k_m.gguf',
      name: 'Qwen2.5 0.5B Instruct Q4_K_M',
      type: 'llm',
    },
    server: { contextSize: 8192 },
  },
];

function deepFreeze(o) {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
}
deepFreeze(PRESETS);

/**
 * A preset by id, as a fresh object whose `download` can be passed to `downloadModel()` (after
 * adding callbacks). `sdxl-split` needs the UNet: `{ repo, file }` (or `{ url }`) in `main`.
 * Returns undefined for an unknown id.
 */
function getPreset(id, main) {
  const found = PRESETS.find((p) => p.id === id);
  if (!found) return undefined;
  const preset = structuredClone(found);
  if (main && typeof main === 'object') {
    if (main.url) {
      Object.assign(preset.download, { source: 'url', url: main.url });
      delete preset.download.repo;
      delete preset.download.file;
    } else {
      Object.assign(preset.download, { repo: main.repo, file: main.file });
      if (main.revision) preset.download.revision = main.revision;
    }
    Object.assign(preset.files[0], { repo: main.repo || null, file: main.file || main.url, approxBytes: null });
    preset.download.name = `${preset.name} ${String(main.file || main.url).split('/').pop()}`;
    delete preset.requires;
  } else if (preset.requires) {
    throw new TypeError(`Preset ${id} needs its ${preset.requires}: getPreset('${id}', { repo, file })`);
  }
  return preset;
}

module.exports = { PRESETS, getPreset };
