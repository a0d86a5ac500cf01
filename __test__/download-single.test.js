'use strict';
// Single-file downloads against the local Hugging Face-like server.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { g, setup, bytes, sha256, sha256File, tree, progressRecorder, rejectsDownload, leftovers } = require('./helpers/download.js');
const { buildGguf, llamaGguf } = require('./helpers/gguf.js');
const { writeFile, writeRecord } = require('./helpers/storage.js');

test('Hugging Face GGUF: streamed, verified against X-Linked-Etag, header read from the file, record written', async (t) => {
  const { srv, root, hf } = await setup(t);
  const content = Buffer.concat([llamaGguf({ name: 'Tiny Qwen3' }), bytes(3 << 20)]);
  const f = srv.addFile('org/tiny', 'Q4_K_M/Tiny-Qwen3-Q4_K_M.gguf', content);
  const progress = progressRecorder();
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/tiny', file: 'Q4_K_M/Tiny-Qwen3-Q4_K_M.gguf',
    name: 'Tiny Qwen3 Q4_K_M', type: 'llm', onProgress: progress, ...hf,
  });
  const dest = path.join(root, 'models', 'llm', 'Q4_K_MTiny-Qwen3-Q4_K_M.gguf');
  assert.equal(info.id, 'tiny-qwen3-q4km');
  assert.equal(info.name, 'Tiny Qwen3 Q4_K_M');
  assert.equal(info.type, 'llm');
  assert.equal(info.path, dest);
  assert.equal(info.size, content.length);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(info.supportsReasoning, true);
  assert.deepEqual(info.source, {
    type: 'huggingface', url: f.url, repo: 'org/tiny', file: 'Q4_K_M/Tiny-Qwen3-Q4_K_M.gguf', revision: 'main',
  });
  assert.match(info.downloadedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(info.ggufMetadata.architecture, 'llama');
  assert.equal(info.ggufMetadata.general_name, 'Tiny Qwen3');
  assert.equal(info.ggufMetadata.block_count, 22);
  assert.equal(sha256File(dest), f.sha256);
  assert.deepEqual(tree(path.join(root, 'models', 'llm')), ['Q4_K_MTiny-Qwen3-Q4_K_M.gguf', 'tiny-qwen3-q4km.json']);
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(await g.modelManager.getModelInfo('tiny-qwen3-q4km'), info);
  assert.equal(await g.modelManager.verifyModel('tiny-qwen3-q4km'), true);
  progress.assertWellFormed(content.length);
  assert.equal(g.modelManager.isDownloading(), false);
  // The nested path kept its '/' in the request, and nothing was fetched twice: the metadata
  // comes from the downloaded file, not from a second read of its header.
  assert.equal(srv.statsFor(f.path).get, 1);
  assert.equal(srv.statsFor(f.cdnPath).bytesSent, content.length);
});

test('URL source, non-GGUF file (monolithic .safetensors) with a caller checksum', async (t) => {
  const { srv, root } = await setup(t);
  const content = bytes(700000, 7);
  const raw = srv.addRawFile('/files/sdxl-turbo.safetensors', content);
  const progress = progressRecorder();
  const info = await g.modelManager.downloadModel({
    source: 'url', url: raw.url, name: 'SDXL Turbo', type: 'diffusion', checksum: `sha256:${sha256(content).toUpperCase()}`,
    onProgress: progress,
  });
  assert.equal(info.id, 'sdxl-turbo');
  assert.equal(info.path, path.join(root, 'models', 'diffusion', 'sdxl-turbo.safetensors'));
  assert.deepEqual(info.source, { type: 'url', url: raw.url });
  assert.equal(info.checksum, `sha256:${sha256(content)}`);
  assert.equal(info.ggufMetadata, undefined);
  assert.equal(info.supportsReasoning, false);
  assert.ok(fs.readFileSync(info.path).equals(content));
  progress.assertWellFormed(content.length);
  // No remote header read for a non-GGUF file: one GET.
  assert.equal(srv.statsFor('/files/sdxl-turbo.safetensors').get, 1);
});

test('a wrong caller checksum deletes the file and leaves no record', async (t) => {
  const { srv, root } = await setup(t);
  const raw = srv.addRawFile('/files/model.bin', bytes(100000));
  const wrong = 'ab'.repeat(32);
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Bad Sum', type: 'llm', checksum: wrong }),
    /^Download failed: Checksum verification failed$/,
  );
  assert.equal(err.details.expected, `sha256:${wrong}`);
  assert.equal(err.details.actual, `sha256:${raw.sha256}`);
  assert.equal(err.details.expectedFrom, 'checksum');
  assert.deepEqual(tree(path.join(root, 'models', 'llm')), []);
  assert.deepEqual(await g.modelManager.listModels(), []);
});

test('callbacks that throw never break the download', async (t) => {
  const { srv, hf } = await setup(t);
  const f = srv.addFile('org/m', 'm.bin', bytes(300000));
  srv.fault(f.cdnPath, { slow: 1 << 20 });
  let calls = 0;
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/m', file: 'm.bin', name: 'Thrower', type: 'llm', ...hf,
    onProgress: () => {
      calls++;
      throw new Error('UI bug');
    },
  });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.ok(calls >= 2, `onProgress was called ${calls} times`);
});

test('an existing record with the same id is refused before any request', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'm.gguf', bytes(1000));
  writeRecord(root, { id: 'my-model', name: 'My Model', type: 'diffusion', size: 1, path: path.join(root, 'models', 'diffusion', 'x'), downloadedAt: '2026-01-01T00:00:00.000Z', source: { type: 'url', url: 'http://x/x' } });
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'm.gguf', name: 'My Model', type: 'llm', ...hf }),
    /^Download failed: Model already exists: my-model$/,
  );
  assert.equal(err.details.modelId, 'my-model');
  assert.equal(srv.requests.length, 0);
  assert.equal(fs.existsSync(path.join(root, 'models', 'llm', 'm.gguf')), false);
  void f;
});

test('an existing file is adopted only when it verifies; otherwise it is left alone', async (t) => {
  const { srv, root, hf } = await setup(t);
  const content = bytes(50000, 3);
  const f = srv.addFile('org/m', 'weights.bin', content);
  const dest = path.join(root, 'models', 'llm', 'weights.bin');
  // Someone else's file with the same name: not overwritten, not deleted.
  writeFile(dest, 'not the model');
  await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'weights.bin', name: 'W', type: 'llm', ...hf }),
    /Model file already exists: weights\.bin/,
  );
  assert.equal(fs.readFileSync(dest, 'utf8'), 'not the model');
  // The same file, left by a run that crashed after the rename but before the record: adopted
  // after hashing, with no body fetched.
  fs.writeFileSync(dest, content);
  srv.resetStats();
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'weights.bin', name: 'W', type: 'llm', ...hf });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(srv.statsFor(f.cdnPath).get, 0);
  // A file another record points at is never taken over.
  await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'weights.bin', name: 'W2', type: 'llm', ...hf }),
    /Model file already exists: weights\.bin/,
  );
});

test('a pinned revision and a revision with a slash resolve as Hugging Face URLs', async (t) => {
  const { srv, hf } = await setup(t);
  const f = srv.addFile('org/m', 'a.bin', bytes(2000), { revision: 'refs/pr/1' });
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'a.bin', revision: 'refs/pr/1', name: 'PR', type: 'llm', ...hf });
  assert.equal(info.source.revision, 'refs/pr/1');
  assert.equal(info.source.url, `${srv.url}/org/m/resolve/refs%2Fpr%2F1/a.bin`);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  const commit = srv.commitOf('org/m', 'refs/pr/1');
  const pinned = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'a.bin', revision: commit, name: 'Pinned', type: 'diffusion', ...hf });
  assert.equal(pinned.source.revision, commit);
  assert.equal(pinned.checksum, `sha256:${f.sha256}`);
});

test('GGUF metadata of a large header (a real tokenizer) is read from the downloaded file', async (t) => {
  const { srv, hf } = await setup(t);
  // 3 MB of vocabulary, like a Qwen3 GGUF: more than the first read of the header.
  const tokens = Array.from({ length: 150000 }, (_, i) => `token-${i}`);
  const header = buildGguf({
    kv: [
      ['general.architecture', 'string', 'qwen3'],
      ['qwen3.block_count', 'u32', 36],
      ['qwen3.context_length', 'u32', 40960],
      ['tokenizer.ggml.tokens', ['array', 'string'], tokens],
    ],
    tensors: [{ name: 'token_embd.weight', dims: [8, 3], type: 0, offset: 0 }],
    dataBytes: 96,
  });
  assert.ok(header.length > 2 << 20);
  const content = Buffer.concat([header, bytes(20 << 20)]);
  const f = srv.addFile('org/m', 'm.gguf', content);
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'm.gguf', name: 'Local Meta', type: 'llm', ...hf });
  assert.equal(info.ggufMetadata.architecture, 'qwen3');
  assert.equal(info.ggufMetadata.block_count, 36);
  assert.equal(info.ggufMetadata.context_length, 40960);
  // Ranged parts only: no separate read of the header (a second request starting at byte 0).
  const starts = srv.statsFor(f.cdnPath).ranges.map((r) => Number(/^bytes=(\d+)-/.exec(r)[1]));
  assert.ok(starts.length > 1, 'the file came in ranged parts');
  assert.equal(starts.filter((s) => s === 0).length, 1, `ranges: ${srv.statsFor(f.cdnPath).ranges}`);
});

test('updateModelMetadata uses the token and endpoint rules of downloads', async (t) => {
  const { srv, hf } = await setup(t, { token: 'hf_good' });
  const content = Buffer.concat([llamaGguf({ blockCount: 9 }), bytes(1000)]);
  srv.addFile('org/gated', 'g.gguf', content, { gated: true });
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/gated', file: 'g.gguf', name: 'Gated Meta', type: 'llm', hfToken: 'hf_good', ...hf });
  assert.equal(info.ggufMetadata.block_count, 9);
  fs.unlinkSync(info.path);
  const prevEndpoint = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = srv.url;
  t.after(() => {
    if (prevEndpoint === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = prevEndpoint;
  });
  await rejectsDownload(g.modelManager.updateModelMetadata('gated-meta', { source: 'remote-only' }), /gated/);
  const updated = await g.modelManager.updateModelMetadata('gated-meta', { source: 'remote-only', hfToken: 'hf_good' });
  assert.equal(updated.ggufMetadata.block_count, 9);
});
