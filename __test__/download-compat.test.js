'use strict';
// The compatibility preflight: components whose headers do not fit together are refused before
// any of their content is downloaded, with a typed error naming both files.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { g, FAST, setup, tree, rejectsDownload, bodyGets } = require('./helpers/download.js');
const modelFiles = require('./fixtures/fake-sd/lib/model-files.js');

/** A header-only model file (real tensor names and shapes, no weights) as a Buffer. */
function headerOnly(write, opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-rs-compat-'));
  try {
    return fs.readFileSync(write(path.join(dir, 'f'), opts));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function repos(srv) {
  return {
    klein4b: srv.addFile('leejet/FLUX.2-klein-4B-GGUF', 'flux-2-klein-4b-Q8_0.gguf', headerOnly(modelFiles.writeFlux2KleinDit)),
    qwen4b: srv.addFile('unsloth/Qwen3-4B-GGUF', 'Qwen3-4B-Q4_0.gguf', headerOnly(modelFiles.writeQwen3, { size: '4b' })),
    qwen8b: srv.addFile('unsloth/Qwen3-8B-GGUF', 'Qwen3-8B-Q8_0.gguf', headerOnly(modelFiles.writeQwen3, { size: '8b' })),
    flux2vae: srv.addFile('Comfy-Org/flux2-dev', 'split_files/vae/flux2-vae.safetensors', headerOnly(modelFiles.writeFlux2Vae)),
    flux1vae: srv.addFile('black-forest-labs/FLUX.1-dev', 'ae.safetensors', headerOnly(modelFiles.writeFlux1Vae)),
    unetDiffusers: srv.addFile('org/sdxl', 'unet-diffusers.safetensors', headerOnly(modelFiles.writeSdxlUnet, { naming: 'diffusers' })),
    clipL: srv.addFile('org/sdxl', 'clip_l.safetensors', headerOnly(modelFiles.writeClipL)),
    clipG: srv.addFile('org/sdxl', 'clip_g.safetensors', headerOnly(modelFiles.writeClipG)),
    sdxlVae: srv.addFile('org/sdxl', 'sdxl_vae.safetensors', headerOnly(modelFiles.writeSdxlVae)),
  };
}

const hfFile = (h) => ({ source: 'huggingface', repo: h.repo, file: h.file });

function klein(f, hf, { llm = f.qwen4b, vae = f.flux2vae } = {}) {
  return {
    ...hfFile(f.klein4b), name: 'Klein Check', type: 'diffusion', modelDirectory: 'klein', ...hf, ...FAST,
    components: [{ role: 'llm', ...hfFile(llm) }, { role: 'vae', ...hfFile(vae) }],
  };
}

/** The refusal: typed, naming both files, nothing downloaded or written. */
async function refused(srv, root, config, re, roles, handles) {
  const err = await rejectsDownload(g.modelManager.downloadModel(config), re);
  assert.equal(err.details.code, 'INCOMPATIBLE_COMPONENTS');
  assert.deepEqual(err.details.roles, roles);
  assert.deepEqual(err.details.files, handles.map((h) => path.basename(h.file)));
  for (const h of handles) assert.equal(bodyGets(srv, h), 0, `${h.file} was downloaded`);
  assert.deepEqual(tree(path.join(root, 'models')), []);
  assert.deepEqual(await g.modelManager.listModels(), []);
}

test('Flux 2 Klein with the Flux 1 VAE is refused before any byte is fetched', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = repos(srv);
  await refused(srv, root, klein(f, hf, { vae: f.flux1vae }),
    /Incompatible components: the VAE ae\.safetensors has 16 latent channels \(Flux 1 or SD3\) but the diffusion model flux-2-klein-4b-Q8_0\.gguf works in 32 \(Flux 2\)/,
    ['diffusion_model', 'vae'], [f.klein4b, f.flux1vae]);
});

test('Klein 4B with the Qwen3-8B text encoder is refused before any byte is fetched', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = repos(srv);
  await refused(srv, root, klein(f, hf, { llm: f.qwen8b }),
    /Incompatible components: flux-2-klein-4b-Q8_0\.gguf and Qwen3-8B-Q8_0\.gguf: the llm text encoder \(36 layers x 4096 wide\) produces a 12288-wide text context, but the diffusion model expects 7680/,
    ['diffusion_model', 'llm'], [f.klein4b, f.qwen8b]);
});

test('an SDXL split with a diffusers-named UNet is refused before any byte is fetched', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = repos(srv);
  const config = {
    ...hfFile(f.unetDiffusers), name: 'SDXL Split', type: 'diffusion', ...hf, ...FAST,
    components: [{ role: 'clip_l', ...hfFile(f.clipL) }, { role: 'clip_g', ...hfFile(f.clipG) }, { role: 'vae', ...hfFile(f.sdxlVae) }],
  };
  await refused(srv, root, config, /the SDXL split model's UNet unet-diffusers\.safetensors has diffusers tensor names/,
    ['diffusion_model', 'clip_g'], [f.unetDiffusers, f.clipG]);
});

test('matching components pass the preflight and download', async (t) => {
  const { srv, hf } = await setup(t);
  const f = repos(srv);
  const info = await g.modelManager.downloadModel(klein(f, hf));
  assert.equal(info.components.llm.checksum, `sha256:${f.qwen4b.sha256}`);
  assert.equal(info.components.vae.checksum, `sha256:${f.flux2vae.sha256}`);
  // A second variant whose VAE is already on disk is checked against the local file.
  srv.resetStats();
  await rejectsDownload(g.modelManager.downloadModel({ ...klein(f, hf, { vae: f.flux1vae }), name: 'Klein Other', modelDirectory: 'other' }), /has 16 latent channels/);
  await rejectsDownload(g.modelManager.downloadModel({ ...klein(f, hf, { llm: f.qwen8b }), name: 'Klein Again' }), /12288-wide/);
  assert.equal(bodyGets(srv, f.qwen8b), 0);
});
