'use strict';
// Every injected fault is either recovered (the file ends up whole and verified) or reported
// (DownloadError, nothing that looks whole left behind).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { g, FAST, setup, bytes, sha256, sha256File, tree, rejectsDownload, leftovers } = require('./helpers/download.js');

const SIZE = 1 << 20;

async function hfFile(t, serverOptions) {
  const ctx = await setup(t, serverOptions);
  const content = bytes(SIZE, 5);
  const f = ctx.srv.addFile('org/m', 'model.bin', content);
  const config = { source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'Faulty', type: 'llm', ...ctx.hf, ...FAST };
  return { ...ctx, content, f, config, dest: path.join(ctx.root, 'models', 'llm', 'model.bin') };
}

function assertWhole(info, dest, f) {
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(sha256File(dest), f.sha256);
}

test('connection dropped after N bytes: resumed with Range, nothing fetched twice', async (t) => {
  const { srv, f, config, dest, root } = await hfFile(t);
  const N = 300000;
  srv.fault(f.cdnPath, { dropAfter: N, times: 1 });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  const st = srv.statsFor(f.cdnPath);
  assert.deepEqual(st.ranges, [`bytes=${N}-`]);
  assert.equal(st.bytesSent, SIZE);
  assert.deepEqual(leftovers(root), []);
});

test('connection reset (RST) mid-body: resumed', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.cdnPath, { dropAfter: 200000, reset: true, times: 1 });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  const st = srv.statsFor(f.cdnPath);
  assert.equal(st.get, 2);
  assert.match(st.ranges[0], /^bytes=\d+-$/);
  assert.ok(st.bytesSent <= SIZE + 200000);
});

test('stalled body: the stall timeout fires and the download resumes', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  const fault = srv.fault(f.cdnPath, { stall: true, stallAfter: 400000, times: 1 });
  const started = Date.now();
  const info = await g.modelManager.downloadModel({ ...config, stallTimeoutMs: 800 });
  assertWhole(info, dest, f);
  assert.equal(fault.hits, 1);
  assert.deepEqual(srv.statsFor(f.cdnPath).ranges, ['bytes=400000-']);
  assert.ok(Date.now() - started >= 700, 'waited for the stall timeout');
});

test('HTTP 500 twice, then success', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.path, { status: 500, times: 2, method: 'GET' });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  assert.deepEqual(srv.statsFor(f.path).statuses.filter((s) => s === 500).length, 2);
});

test('HTTP 429 with Retry-After is honoured', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.cdnPath, { status: 429, retryAfter: '1', times: 1, method: 'GET' });
  const started = Date.now();
  const info = await g.modelManager.downloadModel({ ...config, retryDelayMs: 1 });
  assertWhole(info, dest, f);
  assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms`);
});

test('a server that keeps failing is reported after the retry budget; nothing is left', async (t) => {
  const { srv, f, config, root } = await hfFile(t);
  srv.fault(f.cdnPath, { status: 503, method: 'GET' });
  const err = await rejectsDownload(g.modelManager.downloadModel({ ...config, maxRetries: 2 }), /model\.bin failed after 3 attempts without progress: HTTP error: 503/);
  assert.equal(err.details.attempts, 3);
  assert.equal(srv.statsFor(f.cdnPath).get, 3);
  assert.deepEqual(tree(path.join(root, 'models')), []);
  assert.deepEqual(await g.modelManager.listModels(), []);
});

test('no Content-Length (chunked): size from X-Linked-Size, verified', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.cdnPath, { noContentLength: true });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
});

test('no Content-Length, body ended by closing, HEAD refused: a short body is not taken as whole', async (t) => {
  const { srv, root } = await setup(t);
  const content = bytes(SIZE, 9);
  const raw = srv.addRawFile('/files/plain.bin', content);
  srv.fault(raw.path, { headFails: true });
  srv.fault(raw.path, { noContentLength: 'close' });
  srv.fault(raw.path, { dropAfter: 250000, times: 1, skip: 1 }); // the first GET is the size probe
  const info = await g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Plain', type: 'llm', ...FAST });
  assert.equal(info.size, SIZE);
  assert.equal(sha256File(path.join(root, 'models', 'llm', 'plain.bin')), sha256(content));
  assert.ok(srv.statsFor(raw.path).ranges.includes('bytes=250000-'));
});

test('Range ignored after a drop: restarted from zero with the full response', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.cdnPath, { dropAfter: 300000, times: 1 });
  srv.fault(f.cdnPath, { ignoreRange: true, skip: 1 });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  const st = srv.statsFor(f.cdnPath);
  assert.deepEqual(st.ranges, ['bytes=300000-']);
  assert.equal(st.bytesSent, SIZE + 300000);
});

test('wrong bytes on a fresh download: reported with expected and actual, file deleted', async (t) => {
  const { srv, f, config, root } = await hfFile(t);
  srv.fault(f.cdnPath, { wrongBytes: { offset: 12345, length: 1 }, times: 1 });
  const err = await rejectsDownload(g.modelManager.downloadModel(config), /^Download failed: Checksum verification failed$/);
  assert.equal(err.details.expected, `sha256:${f.sha256}`);
  assert.equal(err.details.expectedFrom, 'huggingface');
  assert.notEqual(err.details.actual, err.details.expected);
  assert.deepEqual(tree(path.join(root, 'models')), []);
  // Nothing stale blocks the next attempt.
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
});

test('wrong bytes after a resume: one clean pass from zero recovers', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  const N = 300000;
  srv.fault(f.cdnPath, { dropAfter: N, times: 1 });
  srv.fault(f.cdnPath, { wrongBytes: { offset: N + 100, length: 4 }, skip: 1, times: 1 });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  const st = srv.statsFor(f.cdnPath);
  assert.equal(st.get, 3);
  assert.equal(st.bytesSent, N + (SIZE - N) + SIZE);
});

test('file changed between attempts (URL source, ETag/If-Range): restarted, the new file kept', async (t) => {
  const { srv, root } = await setup(t);
  const content = bytes(SIZE, 13);
  const raw = srv.addRawFile('/files/changing.bin', content);
  srv.fault(raw.path, { dropAfter: 200000, times: 1, method: 'GET' });
  srv.fault(raw.path, { changeEtag: true, skip: 1, method: 'GET' });
  const info = await g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Changing', type: 'llm', ...FAST });
  const changed = Buffer.from(content.map((b) => b ^ 0xa5));
  assert.ok(fs.readFileSync(path.join(root, 'models', 'llm', 'changing.bin')).equals(changed));
  assert.equal(info.checksum, `sha256:${sha256(changed)}`);
  assert.deepEqual(srv.statsFor(raw.path).ranges, ['bytes=200000-']);
});

test('file changed upstream between attempts (Hugging Face sha256 moved): the new version is verified', async (t) => {
  const { srv, f, config, dest, content } = await hfFile(t);
  srv.fault(f.cdnPath, { dropAfter: 200000, times: 1 });
  srv.fault(f.path, { changeEtag: true, skip: 1, method: 'GET' });
  const info = await g.modelManager.downloadModel(config);
  const changed = Buffer.from(content.map((b) => b ^ 0xa5));
  assert.equal(info.checksum, `sha256:${sha256(changed)}`);
  assert.ok(fs.readFileSync(dest).equals(changed));
});

test('a partial from an older version of the file is not resumed', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  srv.fault(f.cdnPath, { dropAfter: 300000 });
  await rejectsDownload(g.modelManager.downloadModel({ ...config, maxRetries: 0 }), /failed after 1 attempts/);
  assert.equal(fs.statSync(`${dest}.partial`).size, 300000);
  srv.clearFaults();
  const newer = bytes(SIZE + 100, 77);
  const f2 = srv.addFile('org/m', 'model.bin', newer);
  srv.resetStats();
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${f2.sha256}`);
  assert.equal(sha256File(dest), f2.sha256);
  assert.deepEqual(srv.statsFor(f2.cdnPath).ranges, []);
});

test('an expired CDN URL is re-resolved on resume', async (t) => {
  const { srv, f, config, dest } = await hfFile(t);
  const N = 250000;
  srv.fault(f.cdnPath, { dropAfter: N, times: 1 });
  srv.on('fault', (e) => {
    if (e.type === 'drop') srv.expireCdnUrls();
  });
  const info = await g.modelManager.downloadModel(config);
  assertWhole(info, dest, f);
  assert.deepEqual(srv.statsFor(f.cdnPath).ranges, [`bytes=${N}-`]);
});
