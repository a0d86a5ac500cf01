'use strict';
// Multi-component (Flux 2 Klein, SDXL split) and sharded downloads, with shared directories.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { g, FAST, setup, bytes, sha256File, tree, progressRecorder, rejectsDownload, leftovers, bodyGets } = require('./helpers/download.js');
const { buildGguf } = require('./helpers/gguf.js');

/** A GGUF-headed file of about `size` bytes (a scaled-down DiT or text encoder). */
function ggufOf(arch, size, seed) {
  const head = buildGguf({ kv: [['general.architecture', 'string', arch], ['general.name', 'string', `${arch} test`]] });
  return Buffer.concat([head, bytes(size, seed)]);
}

/** Flux 2 Klein-shaped repos: DiT (GGUF), Qwen3-4B text encoder (GGUF), Flux 2 VAE (nested path). */
function fluxRepos(srv) {
  return {
    q8: srv.addFile('leejet/FLUX.2-klein-4B-GGUF', 'flux-2-klein-4b-Q8_0.gguf', ggufOf('flux', 400000, 1)),
    q4: srv.addFile('leejet/FLUX.2-klein-4B-GGUF', 'flux-2-klein-4b-Q4_0.gguf', ggufOf('flux', 250000, 2)),
    llm: srv.addFile('unsloth/Qwen3-4B-GGUF', 'Qwen3-4B-Q4_0.gguf', ggufOf('qwen3', 300000, 3)),
    vae: srv.addFile('Comfy-Org/flux2-dev', 'split_files/vae/flux2-vae.safetensors', bytes(60000, 4)),
  };
}

function kleinConfig(srv, files, variant, extra = {}) {
  return {
    source: 'huggingface',
    repo: 'leejet/FLUX.2-klein-4B-GGUF',
    file: `flux-2-klein-4b-${variant}.gguf`,
    name: `Flux 2 Klein ${variant}`,
    type: 'diffusion',
    modelDirectory: 'flux-2-klein',
    provenance: { license: 'apache-2.0' },
    hfEndpoint: srv.url,
    components: [
      { role: 'llm', source: 'huggingface', repo: 'unsloth/Qwen3-4B-GGUF', file: 'Qwen3-4B-Q4_0.gguf', provenance: { license: 'apache-2.0', note: 'base, not instruct' } },
      // As the plan's example: a direct URL to a nested file of a Hugging Face repo.
      { role: 'vae', source: 'url', url: files.vae.url },
    ],
    ...extra,
  };
}

test('Flux 2 Klein: three files in one directory, one record, aggregate progress', async (t) => {
  const { srv, root } = await setup(t);
  const files = fluxRepos(srv);
  const progress = progressRecorder();
  const starts = [];
  const info = await g.modelManager.downloadModel({
    ...kleinConfig(srv, files, 'Q8_0'),
    onProgress: progress,
    onComponentStart: (s) => starts.push(s),
  });
  const dir = path.join(root, 'models', 'diffusion', 'flux-2-klein');
  assert.deepEqual(tree(path.join(root, 'models', 'diffusion')), [
    'flux-2-klein-q80.json',
    'flux-2-klein/Qwen3-4B-Q4_0.gguf',
    'flux-2-klein/flux-2-klein-4b-Q8_0.gguf',
    'flux-2-klein/flux2-vae.safetensors',
  ]);
  const total = files.q8.size + files.llm.size + files.vae.size;
  assert.equal(info.id, 'flux-2-klein-q80');
  assert.equal(info.size, total);
  assert.equal(info.path, path.join(dir, 'flux-2-klein-4b-Q8_0.gguf'));
  assert.equal(info.path, info.components.diffusion_model.path);
  assert.deepEqual(Object.keys(info.components), ['diffusion_model', 'llm', 'vae']);
  assert.deepEqual(info.components.diffusion_model, {
    path: info.path,
    size: files.q8.size,
    checksum: `sha256:${files.q8.sha256}`,
    source: { type: 'huggingface', url: files.q8.url, repo: 'leejet/FLUX.2-klein-4B-GGUF', file: 'flux-2-klein-4b-Q8_0.gguf', revision: 'main' },
    provenance: { license: 'apache-2.0' },
  });
  assert.deepEqual(info.components.llm.provenance, { license: 'apache-2.0', note: 'base, not instruct' });
  assert.deepEqual(info.components.vae, {
    path: path.join(dir, 'flux2-vae.safetensors'),
    size: files.vae.size,
    checksum: `sha256:${files.vae.sha256}`,
    source: { type: 'url', url: files.vae.url },
  });
  assert.deepEqual(info.source, info.components.diffusion_model.source);
  assert.deepEqual(info.provenance, { license: 'apache-2.0' });
  assert.equal(info.checksum, undefined);
  assert.equal(info.supportsReasoning, undefined);
  assert.equal(info.ggufMetadata.architecture, 'flux');
  for (const [role, h] of [['diffusion_model', files.q8], ['llm', files.llm], ['vae', files.vae]]) {
    assert.equal(sha256File(info.components[role].path), h.sha256, role);
  }
  assert.deepEqual(starts, [
    { role: 'diffusion_model', filename: 'flux-2-klein-4b-Q8_0.gguf', index: 1, total: 3 },
    { role: 'llm', filename: 'Qwen3-4B-Q4_0.gguf', index: 2, total: 3 },
    { role: 'vae', filename: 'flux2-vae.safetensors', index: 3, total: 3 },
  ]);
  progress.assertWellFormed(total);
  // The record is what downloadModel returned, less the computed sharedSize.
  assert.deepEqual({ ...JSON.parse(fs.readFileSync(path.join(root, 'models', 'diffusion', 'flux-2-klein-q80.json'), 'utf8')), sharedSize: 0 }, info);
  assert.equal(await g.modelManager.verifyModel('flux-2-klein-q80'), true);
});

test('SDXL split: four roles from nested repo paths, default directory = id', async (t) => {
  const { srv, root, hf } = await setup(t);
  const repo = 'stabilityai/stable-diffusion-xl-base-1.0';
  const parts = {
    diffusion_model: srv.addFile(repo, 'unet/diffusion_pytorch_model.fp16.safetensors', bytes(300000, 11)),
    clip_l: srv.addFile(repo, 'text_encoder/model.fp16.safetensors', bytes(80000, 12)),
    clip_g: srv.addFile(repo, 'text_encoder_2/model.fp16.safetensors', bytes(120000, 13)),
    vae: srv.addFile('madebyollin/sdxl-vae-fp16-fix', 'sdxl.vae.safetensors', bytes(40000, 14)),
  };
  const progress = progressRecorder();
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo, file: 'unet/diffusion_pytorch_model.fp16.safetensors', name: 'SDXL Base Split', type: 'diffusion', ...hf,
    onProgress: progress,
    components: [
      { role: 'clip_l', source: 'huggingface', repo, file: 'text_encoder/model.fp16.safetensors' },
      { role: 'clip_g', source: 'huggingface', repo, file: 'text_encoder_2/model.fp16.safetensors' },
      { role: 'vae', source: 'huggingface', repo: 'madebyollin/sdxl-vae-fp16-fix', file: 'sdxl.vae.safetensors', checksum: parts.vae.sha256 },
    ],
  });
  // Nested paths are flattened as genai-electron does; same-named files in different folders
  // therefore stay distinct.
  assert.deepEqual(tree(path.join(root, 'models', 'diffusion')), [
    'sdxl-base-split.json',
    'sdxl-base-split/sdxl.vae.safetensors',
    'sdxl-base-split/text_encoder_2model.fp16.safetensors',
    'sdxl-base-split/text_encodermodel.fp16.safetensors',
    'sdxl-base-split/unetdiffusion_pytorch_model.fp16.safetensors',
  ]);
  assert.deepEqual(Object.keys(info.components), ['diffusion_model', 'clip_l', 'clip_g', 'vae']);
  let sum = 0;
  for (const [role, h] of Object.entries(parts)) {
    assert.equal(info.components[role].checksum, `sha256:${h.sha256}`, role);
    assert.equal(info.components[role].size, h.size);
    sum += h.size;
  }
  assert.equal(info.size, sum);
  assert.equal(info.ggufMetadata, undefined);
  assert.deepEqual(info.components.clip_g.source, { type: 'huggingface', url: parts.clip_g.url, repo, file: 'text_encoder_2/model.fp16.safetensors', revision: 'main' });
  progress.assertWellFormed(sum);
});

test('shared directory: a second variant downloads only its DiT and verifies the shared files', async (t) => {
  const { srv, root } = await setup(t);
  const files = fluxRepos(srv);
  const q8 = await g.modelManager.downloadModel(kleinConfig(srv, files, 'Q8_0'));
  srv.resetStats();
  const progress = progressRecorder();
  const starts = [];
  const q4 = await g.modelManager.downloadModel({ ...kleinConfig(srv, files, 'Q4_0'), onProgress: progress, onComponentStart: (s) => starts.push(s.role) });
  // The encoder and VAE were hashed against Hugging Face's sha256, not fetched again.
  assert.equal(bodyGets(srv, files.llm), 0);
  assert.equal(bodyGets(srv, files.vae), 0);
  assert.equal(bodyGets(srv, files.q4) >= 1, true);
  assert.deepEqual(starts, ['diffusion_model', 'llm', 'vae']);
  // Only the bytes actually fetched count (contract: skipped files are excluded from the total).
  progress.assertWellFormed(files.q4.size);
  assert.equal(q4.components.llm.path, q8.components.llm.path);
  assert.equal(q4.components.vae.checksum, `sha256:${files.vae.sha256}`);
  assert.equal(q4.size, files.q4.size + files.llm.size + files.vae.size);
  const dir = path.join(root, 'models', 'diffusion', 'flux-2-klein');
  assert.deepEqual(tree(dir), ['Qwen3-4B-Q4_0.gguf', 'flux-2-klein-4b-Q4_0.gguf', 'flux-2-klein-4b-Q8_0.gguf', 'flux2-vae.safetensors']);

  // Deleting one variant keeps what the other uses.
  await g.modelManager.deleteModel('flux-2-klein-q80');
  assert.deepEqual(tree(dir), ['Qwen3-4B-Q4_0.gguf', 'flux-2-klein-4b-Q4_0.gguf', 'flux2-vae.safetensors']);
  await g.modelManager.deleteModel('flux-2-klein-q40');
  assert.equal(fs.existsSync(dir), false);
});

test('a corrupted shared file is downloaded again instead of being reused', async (t) => {
  const { srv } = await setup(t);
  const files = fluxRepos(srv);
  const q8 = await g.modelManager.downloadModel(kleinConfig(srv, files, 'Q8_0'));
  const vaePath = q8.components.vae.path;
  const buf = fs.readFileSync(vaePath);
  buf[100] ^= 0xff;
  fs.writeFileSync(vaePath, buf);
  srv.resetStats();
  const q4 = await g.modelManager.downloadModel(kleinConfig(srv, files, 'Q4_0'));
  assert.equal(bodyGets(srv, files.vae), 1);
  assert.equal(bodyGets(srv, files.llm), 0);
  assert.equal(sha256File(vaePath), files.vae.sha256);
  assert.equal(q4.components.vae.checksum, `sha256:${files.vae.sha256}`);
});

test('a failing component leaves no record; finished files are reused by the next attempt', async (t) => {
  const { srv, root } = await setup(t);
  const files = fluxRepos(srv);
  const fault = srv.fault(files.vae.cdnPath, { status: 500 });
  const err = await rejectsDownload(g.modelManager.downloadModel({ ...kleinConfig(srv, files, 'Q8_0'), ...FAST, maxRetries: 1 }), /component vae failed after 2 attempts/);
  assert.equal(err.details.lastError, 'HTTP error: 500 Internal Server Error');
  assert.deepEqual(await g.modelManager.listModels(), []);
  const dir = path.join(root, 'models', 'diffusion', 'flux-2-klein');
  assert.deepEqual(tree(dir), ['Qwen3-4B-Q4_0.gguf', 'flux-2-klein-4b-Q8_0.gguf']);
  fault.remove();
  srv.resetStats();
  const info = await g.modelManager.downloadModel(kleinConfig(srv, files, 'Q8_0'));
  assert.equal(bodyGets(srv, files.q8), 0);
  assert.equal(bodyGets(srv, files.llm), 0);
  assert.equal(info.components.vae.checksum, `sha256:${files.vae.sha256}`);
});

test('cleanupOnFailure removes what the failed attempt fetched, and the empty directory', async (t) => {
  const { srv, root } = await setup(t);
  const files = fluxRepos(srv);
  srv.fault(files.vae.cdnPath, { dropAfter: 1000 });
  await rejectsDownload(
    g.modelManager.downloadModel({ ...kleinConfig(srv, files, 'Q8_0'), ...FAST, maxRetries: 0, cleanupOnFailure: true }),
    /component vae failed/,
  );
  assert.deepEqual(tree(path.join(root, 'models')), []);
});

test('sharded GGUF: siblings derived from the first shard, stored in <id>/', async (t) => {
  const { srv, root, hf } = await setup(t);
  const shards = [1, 2, 3].map((i) => srv.addFile('org/big', `Q4_K_M/Big-0000${i}-of-00003.gguf`, i === 1 ? ggufOf('llama', 50000, 20) : bytes(40000, 20 + i)));
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/big', file: 'Q4_K_M/Big-00001-of-00003.gguf', name: 'Big Model', type: 'llm', ...hf,
    checksum: shards[0].sha256,
  });
  assert.deepEqual(tree(path.join(root, 'models', 'llm')), [
    'big-model.json',
    'big-model/Q4_K_MBig-00001-of-00003.gguf',
    'big-model/Q4_K_MBig-00002-of-00003.gguf',
    'big-model/Q4_K_MBig-00003-of-00003.gguf',
  ]);
  assert.equal(info.path, info.shards[0].path);
  assert.equal(info.size, shards.reduce((a, s) => a + s.size, 0));
  assert.deepEqual(info.shards.map((s) => s.checksum), shards.map((s) => `sha256:${s.sha256}`));
  assert.equal(info.checksum, `sha256:${shards[0].sha256}`);
  assert.equal(info.ggufMetadata.architecture, 'llama');
  assert.deepEqual(leftovers(root), []);
  await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/big', file: 'Q4_K_M/Big-00002-of-00003.gguf', name: 'Second', type: 'llm', ...hf }),
    /first shard/,
  );
});
