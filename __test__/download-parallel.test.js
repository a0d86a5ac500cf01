'use strict';
// Ranged transfers: several connections per file, whole models fetched concurrently, a dying
// connection, a server without Range support, and a crash resumed range by range.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { g, FAST, setup, bytes, sha256File, tree, waitFor, progressRecorder, leftovers, startChild } = require('./helpers/download.js');

/** Small parts so files of a few MiB are split like multi-GB ones are. */
const PARTS = Object.freeze({ testHooks: { partSize: 256 << 10 } });


/** `bytes=a-b` -> [a, b + 1). */
function parseRange(v) {
  const m = /^bytes=(\d+)-(\d+)$/.exec(v);
  assert.ok(m, `a closed range request, got ${v}`);
  return [Number(m[1]), Number(m[2]) + 1];
}

function union(spans) {
  const s = [...spans].sort((a, b) => a[0] - b[0]);
  const out = [];
  for (const [a, b] of s) {
    if (out.length && a <= out[out.length - 1][1]) out[out.length - 1][1] = Math.max(out[out.length - 1][1], b);
    else out.push([a, b]);
  }
  return out;
}

const covered = (spans) => union(spans).reduce((n, [a, b]) => n + b - a, 0);

test('a large file comes over several connections at once, verified, with well-formed progress', async (t) => {
  const { srv, root, hf } = await setup(t, { rateLimitPerConnection: 2 << 20 });
  const SIZE = 6 << 20;
  const f = await srv.addGeneratedFile('org/big', 'model.safetensors', SIZE, { seed: 5 });
  const rec = progressRecorder();
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/big', file: 'model.safetensors', name: 'Big', type: 'llm', ...hf, ...FAST, ...PARTS, onProgress: rec,
  });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(sha256File(info.path), f.sha256);
  const st = srv.statsFor(f.cdnPath);
  assert.ok(st.maxConcurrent >= 3, `at most ${st.maxConcurrent} ranged requests at once`);
  assert.ok(srv.connections.max >= 3, `at most ${srv.connections.max} connections at once`);
  // Every request asked for a closed range inside the file, and together they cover it.
  const spans = st.ranges.map(parseRange);
  for (const [a, b] of spans) assert.ok(a < b && b <= SIZE, `range ${a}-${b}`);
  assert.equal(covered(spans), SIZE);
  rec.assertWellFormed(SIZE);
  assert.deepEqual(leftovers(root), []);
});

test('the files of one model download at the same time, with one aggregate progress', async (t) => {
  const { srv, hf } = await setup(t, { rateLimitPerConnection: 1 << 20 });
  const dit = srv.addFile('org/m', 'dit.gguf', bytes(1 << 20, 1));
  const llm = srv.addFile('org/m', 'llm.gguf', bytes(1 << 20, 2));
  const vae = srv.addFile('org/m', 'vae.safetensors', bytes(1 << 20, 3));
  let both = 0;
  const rec = progressRecorder();
  const onProgress = (d, total, info) => {
    rec(d, total, info);
    const running = (info.components || []).filter((c) => c.phase === 'downloading' && c.downloaded > 0);
    both = Math.max(both, running.length);
  };
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/m', file: 'dit.gguf', name: 'Concurrent', type: 'diffusion', ...hf, ...FAST, connections: 1, onProgress,
    components: [
      { role: 'llm', source: 'huggingface', repo: 'org/m', file: 'llm.gguf' },
      { role: 'vae', source: 'huggingface', repo: 'org/m', file: 'vae.safetensors' },
    ],
  });
  assert.equal(info.components.vae.checksum, `sha256:${vae.sha256}`);
  assert.equal(info.components.llm.checksum, `sha256:${llm.sha256}`);
  assert.equal(info.checksum, undefined);
  assert.equal(info.components.diffusion_model.checksum, `sha256:${dit.sha256}`);
  assert.ok(srv.connections.max >= 3, `files overlapped on ${srv.connections.max} connections`);
  assert.ok(both >= 2, `progress showed ${both} files downloading at once`);
  rec.assertWellFormed(3 << 20);
  const last = rec.calls[rec.calls.length - 1].info;
  assert.deepEqual(last.components.map((c) => [c.component, c.downloaded, c.total, c.phase]), [
    ['diffusion_model', 1 << 20, 1 << 20, 'done'],
    ['llm', 1 << 20, 1 << 20, 'done'],
    ['vae', 1 << 20, 1 << 20, 'done'],
  ]);
});

test('a connection dying mid-range is retried for the rest of its range only', async (t) => {
  const { srv, hf } = await setup(t);
  const SIZE = 4 << 20;
  const f = await srv.addGeneratedFile('org/big', 'model.bin', SIZE, { seed: 7 });
  // The request for the part at 1 MiB dies after 100000 bytes.
  const drop = srv.fault((i) => i.path === f.cdnPath && /^bytes=1048576-/.test(i.headers.range || ''), { dropAfter: 100000, times: 1 });
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/big', file: 'model.bin', name: 'Drop', type: 'llm', ...hf, ...FAST, ...PARTS,
  });
  assert.equal(drop.hits, 1);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  const spans = srv.statsFor(f.cdnPath).ranges.map(parseRange);
  // The retry starts where the bytes stopped (or later, if another connection took half of it).
  const resumedAt = spans.filter(([a]) => a > 1048576 && a <= 1048576 + 100000 + (256 << 10));
  assert.ok(resumedAt.some(([a]) => a === 1048576 + 100000), `no retry from byte ${1048576 + 100000}: ${JSON.stringify(spans)}`);
  assert.equal(covered(spans), SIZE);
});

test('a server that ignores Range gets one stream, and the file is right', async (t) => {
  const { srv, root } = await setup(t);
  const SIZE = 3 << 20;
  const raw = await srv.addRawGeneratedFile('/files/no-ranges.bin', SIZE, { seed: 9, acceptRanges: false });
  const rec = progressRecorder();
  const info = await g.modelManager.downloadModel({
    source: 'url', url: raw.url, name: 'No Ranges', type: 'llm', ...FAST, ...PARTS, onProgress: rec,
  });
  assert.equal(info.checksum, `sha256:${raw.sha256}`);
  assert.equal(sha256File(info.path), raw.sha256);
  const st = srv.statsFor(raw.path);
  assert.ok(st.ranges.length >= 1, 'ranges were tried first');
  // After the 200s to the ranged requests, one plain GET fetched the file.
  assert.ok(st.get > st.ranges.length, `${st.get} GETs, ${st.ranges.length} ranged`);
  rec.assertWellFormed(SIZE);
  assert.deepEqual(leftovers(root), []);
});

test('429 and 503 answers to ranges are retried and the file completes', async (t) => {
  const { srv, hf } = await setup(t);
  const SIZE = 3 << 20;
  const f = await srv.addGeneratedFile('org/big', 'busy.bin', SIZE, { seed: 11 });
  const busy = srv.fault((i) => i.path === f.cdnPath && i.headers.range !== undefined, { status: 429, times: 3 });
  const down = srv.fault((i) => i.path === f.cdnPath && i.headers.range !== undefined, { status: 503, times: 2, skip: 4 });
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/big', file: 'busy.bin', name: 'Busy', type: 'llm', ...hf, ...FAST, ...PARTS,
  });
  assert.equal(busy.hits, 3);
  assert.equal(down.hits, 2);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
});

test('a ranged download killed (SIGKILL) resumes in a new process fetching only the missing ranges', async (t) => {
  const { srv, root, hf } = await setup(t, { rateLimitPerConnection: 1 << 20 });
  const SIZE = 8 << 20;
  const f = await srv.addGeneratedFile('org/big', 'big-model.bin', SIZE, { seed: 13 });
  const config = { source: 'huggingface', repo: 'org/big', file: 'big-model.bin', name: 'Ranged Crash', type: 'llm', ...hf, ...FAST, ...PARTS };
  const child = startChild(root, config);
  t.after(() => child.kill('SIGKILL'));
  const dest = path.join(root, 'models', 'llm', 'big-model.bin');
  const meta = `${dest}.partial.meta`;
  const recorded = () => {
    try {
      const sc = JSON.parse(fs.readFileSync(meta, 'utf8'));
      return sc.version === 2 ? covered(sc.ranges) : 0;
    } catch {
      return 0;
    }
  };
  await waitFor(() => recorded() >= SIZE / 4, 30000, 'a quarter of the file recorded as done');
  child.kill('SIGKILL');
  await child.exited;
  const sc = JSON.parse(fs.readFileSync(meta, 'utf8'));
  const kept = covered(sc.ranges);
  assert.ok(kept >= SIZE / 4 && kept < SIZE, `${kept} bytes recorded`);
  assert.ok(sc.ranges.length >= 2 || sc.ranges[0][0] > 0 || kept < SIZE, 'ranges, not one prefix');
  assert.equal(fs.statSync(`${dest}.partial`).size, SIZE, 'the partial has the file size');

  srv.options.rateLimitPerConnection = 0;
  srv.resetStats();
  const resumer = startChild(root, config);
  const [code] = await resumer.exited;
  assert.equal(code, 0, JSON.stringify(resumer.lines[resumer.lines.length - 1]));
  assert.equal(resumer.lines[resumer.lines.length - 1].ok.checksum, `sha256:${f.sha256}`);
  assert.equal(sha256File(dest), f.sha256);
  // Re-fetched: exactly the ranges the sidecar did not record, nothing it did.
  const spans = srv.statsFor(f.cdnPath).ranges.map(parseRange);
  const refetched = covered(spans);
  assert.equal(refetched, SIZE - kept, `re-fetched ${refetched} bytes, ${SIZE - kept} were missing`);
  for (const [a, b] of spans) {
    for (const [x, y] of sc.ranges) assert.ok(b <= x || a >= y, `range ${a}-${b} re-fetched bytes recorded as done (${x}-${y})`);
  }
  assert.deepEqual(leftovers(root), []);
});

test('two processes pulling the same model: one installs it, the other refuses, nothing is left behind', async (t) => {
  const { srv, root, hf } = await setup(t, { rateLimitPerConnection: 4 << 20 });
  const dit = await srv.addGeneratedFile('org/m', 'dit.gguf', 2 << 20, { seed: 1 });
  const vae = srv.addFile('org/m', 'vae.safetensors', bytes(300000, 2));
  const config = {
    source: 'huggingface', repo: 'org/m', file: 'dit.gguf', name: 'Raced', type: 'diffusion', modelDirectory: 'raced', ...hf, ...FAST, ...PARTS,
    components: [{ role: 'vae', source: 'huggingface', repo: 'org/m', file: 'vae.safetensors' }],
  };
  const a = startChild(root, config);
  const b = startChild(root, config);
  t.after(() => {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  });
  const codes = (await Promise.all([a.exited, b.exited])).map(([c]) => c).sort();
  assert.deepEqual(codes, [0, 1], JSON.stringify([a, b].map((c) => c.lines[c.lines.length - 1])));
  const loser = [a, b].find((c) => c.lines[c.lines.length - 1].error);
  assert.match(loser.lines[loser.lines.length - 1].error.message, /already being downloaded|already exists/);
  const models = await g.modelManager.listModels();
  assert.equal(models.length, 1);
  assert.equal(models[0].components.diffusion_model.checksum, `sha256:${dit.sha256}`);
  assert.deepEqual(tree(path.join(root, 'models', 'diffusion')), ['raced.json', 'raced/dit.gguf', 'raced/vae.safetensors']);
  assert.deepEqual(leftovers(root), []);
});

test('a multi-file install killed at each point resumes on the next call: one record, verified files, nothing re-fetched twice', async (t) => {
  for (const point of ['fileComplete', 'beforeRecord', 'afterRecord']) {
    await t.test(point, async (t2) => {
      const { srv, root, hf } = await setup(t2);
      const dit = srv.addFile('org/m', 'dit.gguf', bytes(200000, 1));
      const llm = srv.addFile('org/m', 'llm.gguf', bytes(300000, 2));
      const vae = srv.addFile('org/m', 'vae.safetensors', bytes(100000, 3));
      const config = {
        source: 'huggingface', repo: 'org/m', file: 'dit.gguf', name: `Crash ${point}`, type: 'diffusion', modelDirectory: 'crash', ...hf, ...FAST,
        components: [
          { role: 'llm', source: 'huggingface', repo: 'org/m', file: 'llm.gguf' },
          { role: 'vae', source: 'huggingface', repo: 'org/m', file: 'vae.safetensors' },
        ],
      };
      const child = startChild(root, { ...config, testHooks: { crashAt: point } });
      t2.after(() => child.kill('SIGKILL'));
      const [, signal] = await child.exited;
      assert.equal(signal, 'SIGABRT', `the child died at ${point}`);
      const fetched = () => [dit, llm, vae].reduce((n, f) => n + srv.statsFor(f.cdnPath).bytesSent, 0);
      const before = fetched();
      const records = await g.modelManager.listModels();
      assert.equal(records.length, point === 'afterRecord' ? 1 : 0, 'the record exists only once every file is in place');
      let info;
      if (point === 'afterRecord') {
        await assert.rejects(g.modelManager.downloadModel(config), /Model already exists/);
        info = records[0];
      } else {
        info = await g.modelManager.downloadModel(config);
      }
      assert.equal(await g.modelManager.verifyModel(info.id), true);
      assert.equal(info.components.llm.checksum, `sha256:${llm.sha256}`);
      assert.equal((await g.modelManager.listModels()).length, 1);
      // The next call fetched at most what the crash left missing.
      const again = fetched() - before;
      if (point !== 'fileComplete') assert.equal(again, 0, `${again} bytes fetched again`);
      else assert.ok(again < dit.size + llm.size + vae.size, `${again} bytes fetched again`);
      assert.deepEqual(tree(path.join(root, 'models', 'diffusion')).filter((f) => !f.endsWith('.lock')), ['crash-' + point.toLowerCase() + '.json', 'crash/dit.gguf', 'crash/llm.gguf', 'crash/vae.safetensors']);
      assert.deepEqual(leftovers(root).filter((f) => !f.endsWith('.lock')), []);
    });
  }
});
