'use strict';
/**
 * Storage compatibility with the real genai-electron (npm, pinned in devDependencies), in both
 * directions: records it writes are listed, verified and deleted here, and records written here
 * are listed, verified and deleted by it.
 */
const { test, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const g = require('..');
const { tempRoot, sha256, writeFile, fluxRecord } = require('./helpers/storage.js');

const REGISTER = path.join(__dirname, 'fixtures', 'electron-stub', 'register.mjs');

/** Runs an ES module snippet with genai-electron imported as `ge`; returns its JSON output. */
function withGenaiElectron(root, body) {
  const code = `const ge = await import('genai-electron');\nconst out = await (async () => { ${body} })();\nprocess.stdout.write(JSON.stringify(out === undefined ? null : out));`;
  const r = spawnSync(process.execPath, ['--no-warnings', '--import', REGISTER, '--input-type=module', '-e', code], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, STUB_ELECTRON_USER_DATA: root },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `genai-electron script failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

let root;
beforeEach(() => {
  root = tempRoot('genai-compat-');
  g.configure({ userDataPath: root });
});

test('records written by genai-electron are read, verified and deleted here', async () => {
  const dir = path.join(root, 'models', 'diffusion', 'klein');
  const files = { dit: Buffer.from('dit-bytes'), llm: Buffer.from('qwen3-bytes'), vae: Buffer.from('vae-bytes') };
  for (const [k, v] of Object.entries(files)) writeFile(path.join(dir, `${k}.bin`), v);
  const single = writeFile(path.join(root, 'models', 'llm', 'tiny.gguf'), Buffer.from('tiny'));
  withGenaiElectron(root, `
    const sm = ge.StorageManager.getInstance();
    await sm.initialize();
    const comp = (name, buf) => ({ path: ${JSON.stringify(dir)} + '/' + name + '.bin', size: buf, checksum: undefined });
    await sm.saveModelMetadata({
      id: 'klein', name: 'Klein', type: 'diffusion', size: 29, path: ${JSON.stringify(path.join(dir, 'dit.bin'))},
      downloadedAt: new Date().toISOString(),
      source: { type: 'huggingface', url: 'https://huggingface.co/o/r/resolve/main/dit.bin', repo: 'o/r', file: 'dit.bin', revision: 'main' },
      provenance: { license: 'apache-2.0' },
      components: {
        diffusion_model: { path: ${JSON.stringify(path.join(dir, 'dit.bin'))}, size: 9, checksum: 'sha256:${sha256(files.dit)}' },
        llm: { path: ${JSON.stringify(path.join(dir, 'llm.bin'))}, size: 11, checksum: 'sha256:${sha256(files.llm)}' },
        vae: { path: ${JSON.stringify(path.join(dir, 'vae.bin'))}, size: 9 },
      },
    });
    await sm.saveModelMetadata({
      id: 'tiny', name: 'Tiny', type: 'llm', size: 4, path: ${JSON.stringify(single)},
      downloadedAt: new Date().toISOString(), source: { type: 'url', url: 'https://example.com/tiny.gguf' },
      checksum: 'sha256:${sha256(Buffer.from('tiny'))}', supportsReasoning: false,
    });
  `);
  const listed = await g.modelManager.listModels();
  assert.deepEqual(listed.map((m) => m.id), ['tiny', 'klein']);
  const klein = await g.modelManager.getModelInfo('klein');
  assert.deepEqual(Object.keys(klein.components), ['diffusion_model', 'llm', 'vae']);
  assert.equal(klein.provenance.license, 'apache-2.0');
  assert.equal(await g.modelManager.verifyModel('klein'), true);
  assert.equal(await g.modelManager.verifyModel('tiny'), true);
  fs.appendFileSync(path.join(dir, 'llm.bin'), '!');
  await assert.rejects(g.modelManager.verifyModel('klein'), (e) => e instanceof g.ChecksumError && e.details.component === 'llm');
  await g.modelManager.deleteModel('klein');
  assert.equal(fs.existsSync(dir), false);
  assert.deepEqual((await g.modelManager.listModels()).map((m) => m.id), ['tiny']);
});

test('records written here are read, verified and deleted by genai-electron', async () => {
  const a = fluxRecord(root, { id: 'klein-a', name: 'Klein A', dit: 'a.gguf' });
  const b = fluxRecord(root, { id: 'klein-b', name: 'Klein B', dit: 'b.gguf' });
  // Rewrite both through this library, adding a field genai-electron does not know.
  const sm = g.StorageManager.getInstance();
  for (const id of ['klein-a', 'klein-b']) {
    const rec = await sm.loadModelMetadata('diffusion', id);
    rec.note = 'written by genai-electron-rs';
    await sm.saveModelMetadata(rec);
  }
  const seen = withGenaiElectron(root, `
    const mm = ge.modelManager;
    const list = await mm.listModels('diffusion');
    const info = await mm.getModelInfo('klein-a');
    const verified = await mm.verifyModel('klein-a');
    await mm.deleteModel('klein-a');
    return { ids: list.map((m) => m.id).sort(), roles: Object.keys(info.components), path: info.path, verified };
  `);
  assert.deepEqual(seen.ids, ['klein-a', 'klein-b']);
  assert.deepEqual(seen.roles, ['diffusion_model', 'llm', 'vae']);
  assert.equal(seen.path, a.components.diffusion_model.path);
  assert.equal(seen.verified, true);
  // genai-electron's shared-aware delete kept b's files; this library still sees b intact.
  assert.equal(fs.existsSync(a.components.diffusion_model.path), false);
  assert.equal(await g.modelManager.verifyModel('klein-b'), true);
  assert.equal((await g.modelManager.getModelInfo('klein-b')).note, 'written by genai-electron-rs');
  assert.ok(b);
});
