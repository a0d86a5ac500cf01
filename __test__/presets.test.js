'use strict';
/**
 * The preset catalogue: every preset's DownloadConfig downloads (from the local Hugging Face-like
 * server, files of the real shapes at the written repo and path) and gets the preset's id, and
 * getPreset hands out fresh copies and refuses what it cannot complete.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startHfServer } = require('./fixtures/hf-server.js');
const files = require('./fixtures/fake-sd/lib/model-files.js');
const { tempRoot } = require('./helpers/storage.js');
const { PRESETS, getPreset, configure, modelManager } = require('..');

// What each file of the catalogue is, to make a small one of the right kind.
const WRITERS = {
  'flux-2-klein-4b-Q8_0.gguf': files.writeFlux2KleinDit,
  'flux-2-klein-4b-Q4_0.gguf': files.writeFlux2KleinDit,
  'Qwen3-4B-Q4_0.gguf': (p) => files.writeQwen3(p, { size: '4b' }),
  'split_files/vae/flux2-vae.safetensors': files.writeFlux2Vae,
  'sd_xl_base_1.0.safetensors': files.writeSdxlCheckpoint,
  'text_encoders/clip_l.safetensors': files.writeClipL,
  'text_encoders/clip_g.safetensors': files.writeClipG,
  'sdxl_vae.safetensors': files.writeSdxlVae,
  'qwen2.5-0.5b-instruct-q4_k_m.gguf': (p) => files.writeQwen3(p, { size: '4b' }),
  'unet.safetensors': (p) => files.writeSdxlUnet(p, { naming: 'ldm' }),
};
let srv;

before(async () => {
  srv = await startHfServer();
  const scratch = tempRoot('genai-presets-src-');
  const served = new Set();
  const add = (repo, file) => {
    if (served.has(`${repo}/${file}`)) return;
    served.add(`${repo}/${file}`);
    const write = WRITERS[file];
    assert.ok(write, `no fixture for ${file}`);
    const p = write(path.join(scratch, String(served.size), path.basename(file)));
    srv.addFile(repo, file, fs.readFileSync(p));
  };
  for (const preset of PRESETS) for (const f of preset.files) if (f.repo) add(f.repo, f.file);
  add('org/sdxl-unet', 'unet.safetensors');
  configure({ userDataPath: tempRoot('genai-presets-') });
  process.env.HF_ENDPOINT = srv.url;
});

after(async () => {
  delete process.env.HF_ENDPOINT;
  await srv.close();
});

test('the catalogue: Flux 2 Klein Q8_0 and Q4_0, SDXL checkpoint and split, two chat LLMs', () => {
  assert.deepEqual(PRESETS.map((p) => [p.id, p.type]), [
    ['flux-2-klein-4b-q80', 'diffusion'],
    ['flux-2-klein-4b-q40', 'diffusion'],
    ['sdxl-base', 'diffusion'],
    ['sdxl-split', 'diffusion'],
    ['qwen3-4b-q40', 'llm'],
    ['qwen25-05b-instruct-q4km', 'llm'],
  ]);
  for (const p of PRESETS) {
    // Every file the download fetches is listed with its repo (and nothing else is fetched).
    const fetched = [p.download, ...(p.download.components || [])].filter((c) => c.repo).map((c) => `${c.repo}/${c.file}`);
    assert.deepEqual(fetched.sort(), p.files.filter((f) => f.repo).map((f) => `${f.repo}/${f.file}`).sort(), p.id);
    if (p.type === 'diffusion') assert.ok(p.generation.steps > 0 && p.generation.width > 0, p.id);
    else assert.ok(p.server.contextSize > 0, p.id);
  }
  assert.ok(Object.isFrozen(PRESETS) && Object.isFrozen(PRESETS[0].download.components[0]));
});

test('getPreset: a fresh copy; undefined for an unknown id; sdxl-split needs its UNet', () => {
  const a = getPreset('flux-2-klein-4b-q40');
  a.download.components.push('x');
  assert.equal(getPreset('flux-2-klein-4b-q40').download.components.length, 2);
  assert.equal(getPreset('nope'), undefined);
  assert.throws(() => getPreset('sdxl-split'), TypeError);
  const split = getPreset('sdxl-split', { repo: 'org/sdxl-unet', file: 'unet.safetensors' });
  assert.equal(split.download.repo, 'org/sdxl-unet');
  assert.equal(split.download.file, 'unet.safetensors');
  assert.equal(split.requires, undefined);
});

for (const preset of PRESETS) {
  test(`preset ${preset.id} downloads from its written files and gets ${preset.requires ? 'a derived id' : 'the preset id'}`, async () => {
    const config = preset.requires ? getPreset(preset.id, { repo: 'org/sdxl-unet', file: 'unet.safetensors' }) : getPreset(preset.id);
    const model = await modelManager.downloadModel(config.download);
    assert.equal(model.type, preset.type);
    if (!preset.requires) assert.equal(model.id, preset.id);
    const roles = preset.download.components ? ['diffusion_model', ...preset.download.components.map((c) => c.role)].sort() : undefined;
    assert.deepEqual(model.components && Object.keys(model.components).sort(), roles);
    assert.equal(await modelManager.verifyModel(model.id), true);
  });
}

test('index.d.ts types the catalogue (strict)', () => {
  const { spawnSync } = require('node:child_process');
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node', '--types', 'node', path.join(__dirname, 'types', 'presets.ts')],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
