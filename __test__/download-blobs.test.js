'use strict';
// Shared blobs: identical files of different models are stored once (hard links), freed with
// their last user; files already in a Hugging Face cache or a given folder are linked, not
// downloaded, after their hash is checked.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { g, FAST, setup, bytes, sha256File, tree, bodyGets, leftovers } = require('./helpers/download.js');

/** Bytes of the distinct files (inodes) among `paths`: what they really use on disk. */
function realBytes(paths) {
  const seen = new Map();
  for (const p of paths) {
    const st = fs.statSync(p);
    seen.set(`${st.dev}:${st.ino}`, st.size);
  }
  return [...seen.values()].reduce((a, b) => a + b, 0);
}

function variant(srv, hf, v) {
  return {
    source: 'huggingface', repo: 'org/dit', file: `dit-${v}.gguf`, name: `Variant ${v}`, type: 'diffusion', modelDirectory: `variant-${v}`, ...hf, ...FAST,
    components: [
      { role: 'llm', source: 'huggingface', repo: 'org/encoder', file: 'encoder.gguf' },
      { role: 'vae', source: 'huggingface', repo: 'org/vae', file: 'vae.safetensors' },
    ],
  };
}

test('three variants sharing a text encoder store it once; it is freed with its last user', async (t) => {
  const { srv, root, hf } = await setup(t);
  const dits = ['a', 'b', 'c'].map((v, i) => srv.addFile('org/dit', `dit-${v}.gguf`, bytes(50000 + i, 10 + i)));
  const enc = srv.addFile('org/encoder', 'encoder.gguf', bytes(700000, 2));
  const vae = srv.addFile('org/vae', 'vae.safetensors', bytes(90000, 3));
  const infos = [];
  for (const v of ['a', 'b', 'c']) infos.push(await g.modelManager.downloadModel(variant(srv, hf, v)));
  // Fetched once; the other variants got links to the same bytes.
  assert.equal(bodyGets(srv, enc), 1);
  assert.equal(bodyGets(srv, vae), 1);
  const encPaths = infos.map((i) => i.components.llm.path);
  assert.equal(new Set(encPaths).size, 3, 'each variant has its own path');
  assert.equal(realBytes(encPaths), enc.size, 'one copy on disk');
  for (const p of encPaths) assert.equal(sha256File(p), enc.sha256);
  const all = infos.flatMap((i) => Object.values(i.components).map((c) => c.path));
  const real = realBytes(all);
  assert.equal(real, dits.reduce((n, d) => n + d.size, 0) + enc.size + vae.size);
  assert.equal(await g.StorageManager.getInstance().getStorageUsed(), real);
  // Each variant reports what it shares; the first one shared nothing when it was downloaded.
  assert.deepEqual(infos.map((i) => i.sharedSize), [0, enc.size + vae.size, enc.size + vae.size]);
  const listed = await g.modelManager.listModels();
  assert.deepEqual(listed.map((m) => m.sharedSize), [enc.size + vae.size, enc.size + vae.size, enc.size + vae.size]);
  assert.equal(listed.reduce((n, m) => n + m.size - m.sharedSize, 0) + enc.size + vae.size, real);

  await g.modelManager.deleteModel(infos[0].id);
  await g.modelManager.deleteModel(infos[1].id);
  assert.equal((await g.modelManager.getModelInfo(infos[2].id)).sharedSize, 0, 'the last user shares nothing');
  assert.equal(fs.existsSync(encPaths[0]), false);
  assert.equal(sha256File(encPaths[2]), enc.sha256, 'the last user keeps its bytes');
  assert.equal(await g.StorageManager.getInstance().getStorageUsed(), dits[2].size + enc.size + vae.size);
  assert.ok(tree(path.join(root, 'models', '.blobs')).includes(`sha256-${enc.sha256}`));

  await g.modelManager.deleteModel(infos[2].id);
  assert.deepEqual(tree(path.join(root, 'models')), [], 'the blobs went with the last user');
  assert.equal(await g.StorageManager.getInstance().getStorageUsed(), 0);
});

/** A Hugging Face hub cache holding `content` for repo/file as huggingface_hub lays it out. */
function fakeHub(repo, file, content, sha) {
  const hub = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-rs-hub-'));
  const base = path.join(hub, `models--${repo.replace('/', '--')}`);
  const commit = 'c'.repeat(40);
  fs.mkdirSync(path.join(base, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(base, 'refs'), { recursive: true });
  fs.mkdirSync(path.join(base, 'snapshots', commit), { recursive: true });
  fs.writeFileSync(path.join(base, 'blobs', sha), content);
  fs.writeFileSync(path.join(base, 'refs', 'main'), commit);
  fs.symlinkSync(path.join('..', '..', 'blobs', sha), path.join(base, 'snapshots', commit, file));
  return { hub, blob: path.join(base, 'blobs', sha) };
}

test('a file in the Hugging Face cache is linked after its hash is checked, not downloaded', async (t) => {
  const { srv, root, hf } = await setup(t);
  const content = bytes(400000, 5);
  const f = srv.addFile('org/cached', 'model.gguf', content);
  const { hub, blob } = fakeHub('org/cached', 'model.gguf', content, f.sha256);
  t.after(() => fs.rmSync(hub, { recursive: true, force: true }));
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/cached', file: 'model.gguf', name: 'Cached', type: 'llm', ...hf, huggingFaceCache: hub });
  assert.equal(bodyGets(srv, f), 0);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(fs.statSync(info.path).ino, fs.statSync(blob).ino, 'hard-linked from the cache');
  assert.deepEqual(leftovers(root), []);

  // HF_HUB_CACHE is the default; a cache blob whose bytes are not what its name says is ignored.
  const other = srv.addFile('org/cached', 'other.gguf', bytes(300000, 6));
  const bad = fakeHub('org/cached', 'other.gguf', bytes(300000, 7), other.sha256);
  t.after(() => fs.rmSync(bad.hub, { recursive: true, force: true }));
  const saved = process.env.HF_HUB_CACHE;
  process.env.HF_HUB_CACHE = bad.hub;
  t.after(() => {
    if (saved === undefined) delete process.env.HF_HUB_CACHE;
    else process.env.HF_HUB_CACHE = saved;
  });
  const o = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/cached', file: 'other.gguf', name: 'Other', type: 'llm', ...hf });
  assert.equal(bodyGets(srv, other), 1, 'downloaded, since the cached bytes did not match');
  assert.equal(sha256File(o.path), other.sha256);
  assert.notEqual(fs.statSync(o.path).ino, fs.statSync(bad.blob).ino);
  // With the cache turned off nothing is taken from it.
  srv.resetStats();
  await g.modelManager.deleteModel(info.id);
  const again = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/cached', file: 'model.gguf', name: 'Cached', type: 'llm', ...hf, huggingFaceCache: false });
  assert.equal(bodyGets(srv, f), 1);
  assert.notEqual(fs.statSync(again.path).ino, fs.statSync(blob).ino);
});

test('importFrom: a file of the same name, size and hash in a folder (ComfyUI models/) is linked', async (t) => {
  const { srv, hf } = await setup(t);
  const content = bytes(250000, 8);
  const vae = srv.addFile('org/vae', 'flux2-vae.safetensors', content);
  const dit = srv.addFile('org/dit', 'dit.gguf', bytes(30000, 9));
  const comfy = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-rs-comfy-'));
  t.after(() => fs.rmSync(comfy, { recursive: true, force: true }));
  const there = path.join(comfy, 'models', 'vae', 'flux2-vae.safetensors');
  fs.mkdirSync(path.dirname(there), { recursive: true });
  fs.writeFileSync(there, content);
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/dit', file: 'dit.gguf', name: 'Imported', type: 'diffusion', ...hf, huggingFaceCache: false,
    importFrom: [comfy],
    components: [{ role: 'vae', source: 'huggingface', repo: 'org/vae', file: 'flux2-vae.safetensors' }],
  });
  assert.equal(bodyGets(srv, vae), 0);
  assert.equal(bodyGets(srv, dit), 1);
  assert.equal(info.components.vae.checksum, `sha256:${vae.sha256}`);
  assert.equal(fs.statSync(info.components.vae.path).ino, fs.statSync(there).ino);
  await assert.rejects(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/dit', file: 'dit.gguf', name: 'Bad Import', type: 'llm', ...hf, importFrom: [path.join(comfy, 'missing')] }),
    (e) => e instanceof g.DownloadError && /importFrom folder .* does not exist/.test(e.message),
  );
  await assert.rejects(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/dit', file: 'dit.gguf', name: 'Bad Import', type: 'llm', ...hf, importFrom: ['relative/dir'] }),
    /importFrom\[0\] must be an absolute directory path/,
  );
});
