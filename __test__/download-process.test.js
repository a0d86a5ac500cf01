'use strict';
// Crashes, concurrency, locks and cancellation.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { once } = require('node:events');
const { g, FAST, setup, bytes, sha256File, tree, waitFor, rejectsDownload, leftovers, startChild } = require('./helpers/download.js');

function lastProgress(child) {
  const p = child.lines.filter((l) => l.progress !== undefined);
  return p.length ? p[p.length - 1].progress : 0;
}

test('a one-stream download killed half-way (SIGKILL) is resumed by a new process without re-fetching the first half', async (t) => {
  const { srv, root, hf } = await setup(t);
  const SIZE = 24 << 20;
  const f = await srv.addGeneratedFile('org/big', 'big-model.bin', SIZE, { seed: 3 });
  const slow = srv.fault(f.cdnPath, { slow: 8 << 20 });
  // One connection: the ranged path has its own crash test (download-parallel.test.js).
  const config = { source: 'huggingface', repo: 'org/big', file: 'big-model.bin', name: 'Big Model', type: 'llm', connections: 1, ...hf };
  const child = startChild(root, config);
  t.after(() => child.kill('SIGKILL'));
  const dest = path.join(root, 'models', 'llm', 'big-model.bin');
  await waitFor(() => fs.existsSync(`${dest}.partial`) && fs.statSync(`${dest}.partial`).size >= SIZE / 2, 30000, 'half the file on disk');
  child.kill('SIGKILL');
  const [, signal] = await child.exited;
  assert.equal(signal, 'SIGKILL');
  const kept = fs.statSync(`${dest}.partial`).size;
  assert.ok(kept >= SIZE / 2 && kept < SIZE, `partial has ${kept} bytes`);
  assert.ok(fs.existsSync(`${dest}.partial.meta`), 'resume state was written');
  // The dead process's lock file is still there; its OS lock died with it.
  assert.ok(fs.existsSync(path.join(root, 'models', '.download-big-model.lock')));
  assert.deepEqual(await g.modelManager.listModels(), []);

  slow.remove();
  srv.resetStats();
  const resumer = startChild(root, config);
  const [code] = await resumer.exited;
  assert.equal(code, 0);
  const info = resumer.lines[resumer.lines.length - 1].ok;
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(sha256File(dest), f.sha256);
  const st = srv.statsFor(f.cdnPath);
  assert.deepEqual(st.ranges, [`bytes=${kept}-`]);
  assert.equal(st.bytesSent, SIZE - kept);
  assert.deepEqual(leftovers(root), []);
});

test('the same model cannot be downloaded twice at once, across processes', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'model.bin', bytes(4 << 20));
  srv.fault(f.cdnPath, { slow: 1 << 20 });
  const config = { source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'Shared Name', type: 'llm', ...hf };
  const child = startChild(root, config);
  t.after(() => child.kill('SIGKILL'));
  await waitFor(() => lastProgress(child) > 0, 15000, 'the child to transfer');
  const err = await rejectsDownload(g.modelManager.downloadModel(config), new RegExp(`Model shared-name is already being downloaded by process ${child.pid}`));
  assert.equal(err.details.alreadyInProgress, true);
  // Another id writing the same file is refused too.
  await rejectsDownload(g.modelManager.downloadModel({ ...config, name: 'Other Name' }), /model\.bin is already being downloaded by process/);
  child.kill('SIGKILL');
  await child.exited;
  // Once the owner is gone the lock is free again (no stale lock).
  srv.clearFaults();
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
});

test('the same model twice in one process: the second is refused while the first runs', async (t) => {
  const { srv, hf } = await setup(t);
  const f = srv.addFile('org/m', 'model.bin', bytes(2 << 20));
  srv.fault(f.cdnPath, { slow: 1 << 20 });
  const config = { source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'Twice', type: 'llm', ...hf };
  let seen = 0;
  const first = g.modelManager.downloadModel({ ...config, onProgress: (d) => { seen = d; } });
  await waitFor(() => seen > 0, 15000, 'the first download to transfer');
  await rejectsDownload(g.modelManager.downloadModel(config), /Model twice is already being downloaded in this process/);
  assert.equal(g.modelManager.isDownloading(), true);
  srv.clearFaults();
  const info = await first;
  assert.equal(info.checksum, `sha256:${f.sha256}`);
});

test('two different models download at the same time', async (t) => {
  const { srv, hf } = await setup(t);
  const a = srv.addFile('org/a', 'a.bin', bytes(1 << 20, 1));
  const b = srv.addFile('org/b', 'b.bin', bytes(1 << 20, 2));
  srv.fault(a.cdnPath, { slow: 2 << 20 });
  srv.fault(b.cdnPath, { slow: 2 << 20 });
  const seen = { a: [], b: [] };
  const pa = g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/a', file: 'a.bin', name: 'A', type: 'llm', ...hf, onProgress: (d, tot) => seen.a.push([Date.now(), d, tot]) });
  const pb = g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/b', file: 'b.bin', name: 'B', type: 'llm', ...hf, onProgress: (d, tot) => seen.b.push([Date.now(), d, tot]) });
  assert.equal(g.modelManager.isDownloading(), true);
  const [ia, ib] = await Promise.all([pa, pb]);
  assert.equal(ia.checksum, `sha256:${a.sha256}`);
  assert.equal(ib.checksum, `sha256:${b.sha256}`);
  assert.equal(g.modelManager.isDownloading(), false);
  // Both were mid-transfer at the same time.
  const midA = seen.a.filter(([, d, tot]) => d > 0 && d < tot).map(([at]) => at);
  const midB = seen.b.filter(([, d, tot]) => d > 0 && d < tot).map(([at]) => at);
  assert.ok(midA.length && midB.length, 'both reported intermediate progress');
  assert.ok(Math.min(...midA) < Math.max(...midB) && Math.min(...midB) < Math.max(...midA), 'transfers overlapped');
});

async function startSlow(t, extra = {}) {
  const ctx = await setup(t);
  const f = ctx.srv.addFile('org/m', 'model.bin', bytes(2 << 20, 8));
  ctx.srv.fault(f.cdnPath, { slow: 512 << 10 });
  const config = { source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'Cancel Me', type: 'llm', ...ctx.hf, ...extra };
  const dest = path.join(ctx.root, 'models', 'llm', 'model.bin');
  let seen = 0;
  const promise = g.modelManager.downloadModel({ ...config, onProgress: (d) => { seen = d; } });
  promise.catch(() => {});
  await waitFor(() => seen > 0, 15000, 'bytes to arrive');
  return { ...ctx, f, config, dest, promise };
}

test('cancelDownload() rejects with DownloadError, keeps the partial, and a new call resumes it', async (t) => {
  const { srv, f, config, dest, promise } = await startSlow(t);
  assert.equal(g.modelManager.isDownloading(), true);
  g.modelManager.cancelDownload();
  const err = await rejectsDownload(promise, /^Download failed: Download cancelled$/);
  assert.equal(err.details.cancelled, true);
  assert.equal(g.modelManager.isDownloading(), false);
  const kept = fs.statSync(`${dest}.partial`).size;
  assert.ok(kept > 0);
  assert.deepEqual(await g.modelManager.listModels(), []);
  srv.clearFaults();
  srv.resetStats();
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.deepEqual(srv.statsFor(f.cdnPath).ranges, [`bytes=${kept}-`]);
});

test('an AbortSignal cancels its own download only', async (t) => {
  const ctx = await startSlow(t); // 'Cancel Me' keeps running
  const own = ctx.srv.addFile('org/s', 'signal.bin', bytes(2 << 20, 6));
  ctx.srv.fault(own.cdnPath, { slow: 512 << 10 });
  const controller = new AbortController();
  let seen = 0;
  const withSignal = g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/s', file: 'signal.bin', name: 'Signal', type: 'llm', ...ctx.hf,
    signal: controller.signal, onProgress: (d) => { seen = d; },
  });
  await waitFor(() => seen > 0, 15000, 'bytes to arrive');
  controller.abort(new Error('user closed the window'));
  const err = await rejectsDownload(withSignal, /^Download failed: Download cancelled$/);
  assert.equal(err.details.reason, 'user closed the window');
  assert.ok(fs.statSync(path.join(ctx.root, 'models', 'llm', 'signal.bin.partial')).size > 0);
  assert.equal(g.modelManager.isDownloading(), true, 'the other download still runs');
  ctx.srv.clearFaults();
  const first = await ctx.promise;
  assert.equal(first.checksum, `sha256:${ctx.f.sha256}`);
});

test('an already aborted signal rejects at once without any request', async (t) => {
  const { srv, root, hf } = await setup(t);
  srv.addFile('org/m', 'm.bin', bytes(1000));
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'm.bin', name: 'M', type: 'llm', ...hf, signal: AbortSignal.abort() }),
    /Download cancelled/,
  );
  assert.equal(err.details.cancelled, true);
  assert.equal(srv.requests.length, 0);
  assert.deepEqual(tree(root), []);
});

test('cleanupOnFailure: a cancelled download leaves nothing behind', async (t) => {
  const { root, promise } = await startSlow(t, { cleanupOnFailure: true });
  g.modelManager.cancelDownload();
  await rejectsDownload(promise, /Download cancelled/);
  assert.deepEqual(tree(path.join(root, 'models')), []);
});

test('isDownloading() is true from the call, through preflight, until the Promise settles', async (t) => {
  const { srv, hf } = await setup(t);
  const f = srv.addFile('org/m', 'm.bin', bytes(1000));
  const fault = srv.fault(f.path, { delay: 300, method: 'HEAD' });
  const p = g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'm.bin', name: 'M', type: 'llm', ...hf, ...FAST });
  assert.equal(g.modelManager.isDownloading(), true);
  await once(srv, 'request');
  assert.equal(g.modelManager.isDownloading(), true);
  await p;
  assert.equal(fault.hits, 1);
  assert.equal(g.modelManager.isDownloading(), false);
});
