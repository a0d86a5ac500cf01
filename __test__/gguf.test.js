'use strict';
const { test, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const g = require('..');
const { buildGguf, llamaGguf } = require('./helpers/gguf.js');
const { tempRoot, writeFile, writeRecord, readRecord } = require('./helpers/storage.js');

let root;
beforeEach(() => {
  root = tempRoot();
  g.configure({ userDataPath: root });
});

function ggufRecord(content, extra = {}) {
  const p = writeFile(path.join(root, 'models', 'llm', 'tiny.gguf'), content);
  const rec = { id: 'tiny', name: 'Tiny', type: 'llm', size: content.length, path: p, downloadedAt: '2026-01-01T00:00:00.000Z', source: { type: 'url', url: 'http://127.0.0.1:9/tiny.gguf' }, ...extra };
  writeRecord(root, rec);
  return rec;
}

test('fetchLocalGGUFModelMetadata reads the contract fields and raw', async () => {
  const p = writeFile(path.join(root, 'x.gguf'), llamaGguf());
  const m = await g.fetchLocalGGUFModelMetadata(p);
  assert.equal(m.version, 3);
  assert.equal(m.tensor_count, 1);
  assert.equal(m.kv_count, 11);
  assert.equal(m.architecture, 'llama');
  assert.equal(m.general_name, 'Tiny Llama');
  assert.equal(m.file_type, 7);
  assert.equal(m.block_count, 22);
  assert.equal(m.context_length, 2048);
  assert.equal(m.embedding_length, 2048);
  assert.equal(m.attention_head_count, 32);
  assert.ok(Math.abs(m.attention_layer_norm_rms_epsilon - 1e-5) < 1e-9);
  assert.equal(m.rope_freq_base, 10000);
  assert.deepEqual(m.raw['tokenizer.ggml.tokens'], ['<s>', '</s>', 'hello']);
  assert.deepEqual(m.raw['tokenizer.ggml.scores'], [0, 0, -1.5]);
});

test('every value type, v2 files, and 64-bit values as numbers', async () => {
  const buf = buildGguf({
    version: 2,
    kv: [
      ['general.architecture', 'string', 'test'],
      ['a.u8', 'u8', 200], ['a.i8', 'i8', -5], ['a.u16', 'u16', 60000], ['a.i16', 'i16', -300],
      ['a.u32', 'u32', 4000000000], ['a.i32', 'i32', -7], ['a.f32', 'f32', 0.5], ['a.bool', 'bool', true],
      ['a.u64', 'u64', 2 ** 40], ['a.i64', 'i64', -(2 ** 40)], ['a.f64', 'f64', 1.25],
      ['a.arr', ['array', 'i32'], [1, -2, 3]],
      ['test.block_count', 'u64', 61],
    ],
  });
  const m = await g.fetchLocalGGUFModelMetadata(writeFile(path.join(root, 'v2.gguf'), buf));
  assert.equal(m.version, 2);
  assert.deepEqual(
    [m.raw['a.u8'], m.raw['a.i8'], m.raw['a.u16'], m.raw['a.i16'], m.raw['a.u32'], m.raw['a.i32'], m.raw['a.f32'], m.raw['a.bool'], m.raw['a.u64'], m.raw['a.i64'], m.raw['a.f64']],
    [200, -5, 60000, -300, 4000000000, -7, 0.5, true, 2 ** 40, -(2 ** 40), 1.25],
  );
  assert.deepEqual(m.raw['a.arr'], [1, -2, 3]);
  assert.equal(m.block_count, 61);
  assert.equal(typeof m.raw['a.u64'], 'number');
});

test('truncated, garbage and hostile files give a DownloadError, never a crash', async () => {
  const good = llamaGguf();
  const cases = {
    'truncated.gguf': good.subarray(0, 60),
    'garbage.gguf': Buffer.from('this is not a gguf file at all'),
    'empty.gguf': Buffer.alloc(0),
  };
  // A string length of 2^62 bytes.
  const hostile = Buffer.concat([good.subarray(0, 24), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x40])]);
  cases['hostile.gguf'] = hostile;
  for (const [name, bytes] of Object.entries(cases)) {
    const p = writeFile(path.join(root, name), bytes);
    await assert.rejects(g.fetchLocalGGUFModelMetadata(p), (e) => e instanceof g.DownloadError && /GGUF/.test(e.message), name);
  }
  await assert.rejects(g.fetchLocalGGUFModelMetadata(path.join(root, 'missing.gguf')), g.DownloadError);
});

test('updateModelMetadata local-only stores the header and keeps unknown fields', async () => {
  ggufRecord(llamaGguf({ blockCount: 40, contextLength: 16384 }), { customField: 'kept' });
  const updated = await g.modelManager.updateModelMetadata('tiny', { source: 'local-only' });
  assert.equal(updated.ggufMetadata.block_count, 40);
  const onDisk = readRecord(root, 'llm', 'tiny');
  assert.equal(onDisk.ggufMetadata.context_length, 16384);
  assert.equal(onDisk.customField, 'kept');
  assert.equal(await g.modelManager.getModelLayerCount('tiny'), 40);
  assert.equal(await g.modelManager.getModelContextLength('tiny'), 16384);
  assert.equal(await g.modelManager.getModelArchitecture('tiny'), 'llama');
});

test('updateModelMetadata errors: bad file, bad strategy, unknown model, unreachable remote', async () => {
  ggufRecord(Buffer.from('not gguf'));
  await assert.rejects(g.modelManager.updateModelMetadata('tiny', { source: 'local-only' }), (e) => e instanceof g.DownloadError && e.details.modelId === 'tiny' && typeof e.details.localError === 'string');
  await assert.rejects(g.modelManager.updateModelMetadata('tiny', { source: 'sideways' }), (e) => e instanceof g.DownloadError && /Invalid metadata fetch strategy: sideways/.test(e.message));
  await assert.rejects(g.modelManager.updateModelMetadata('ghost'), g.ModelNotFoundError);
  // local-remote: local fails, remote (port 9 on loopback, closed) fails too: both reported.
  await assert.rejects(g.modelManager.updateModelMetadata('tiny'), (e) => e instanceof g.DownloadError && 'localError' in e.details && 'remoteError' in e.details);
});

test('heuristics without metadata follow the contract', async () => {
  const mib = 1024 * 1024;
  writeRecord(root, { id: 'small', name: 's', type: 'llm', size: 100 * mib, path: '/x', downloadedAt: '', source: { type: 'url', url: '' } });
  writeRecord(root, { id: 'mid', name: 'm', type: 'llm', size: 6000 * mib, path: '/x', downloadedAt: '', source: { type: 'url', url: '' } });
  writeRecord(root, { id: 'huge', name: 'h', type: 'llm', size: 40 * 1024 * mib, path: '/x', downloadedAt: '', source: { type: 'url', url: '' } });
  writeRecord(root, { id: 'img', name: 'i', type: 'diffusion', size: 1, path: '/x', downloadedAt: '', source: { type: 'url', url: '' } });
  assert.equal(await g.modelManager.getModelLayerCount('small'), 24);
  assert.equal(await g.modelManager.getModelLayerCount('mid'), 40);
  assert.equal(await g.modelManager.getModelLayerCount('huge'), 120);
  assert.equal(await g.modelManager.getModelContextLength('mid'), 4096);
  assert.equal(await g.modelManager.getModelContextLength('huge'), 8192);
  assert.equal(await g.modelManager.getModelArchitecture('mid'), 'llama');
  assert.equal(await g.modelManager.getModelArchitecture('img'), 'stable-diffusion');
  await assert.rejects(g.modelManager.getModelLayerCount('ghost'), g.ModelNotFoundError);
  assert.ok(fs.existsSync(root));
});
