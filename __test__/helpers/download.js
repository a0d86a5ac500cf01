'use strict';
/** Shared pieces of the download suites: a server + userData per test, progress checks, trees. */

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');
const { startHfServer } = require('../fixtures/hf-server');
const g = require('../..');
const { tempRoot } = require('./storage.js');

/** Short timers so fault tests take seconds, not minutes. */
const FAST = Object.freeze({ stallTimeoutMs: 1000, retryDelayMs: 20, maxRetries: 4 });

/** A fresh server and userData root for one test; both go away after it. */
async function setup(t, serverOptions = {}) {
  const srv = await startHfServer(serverOptions);
  const root = tempRoot('genai-rs-dl-');
  g.configure({ userDataPath: root });
  t.after(async () => {
    await srv.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return { srv, root, hf: { hfEndpoint: srv.url } };
}

/** Deterministic bytes. */
function bytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function sha256File(p) {
  return sha256(fs.readFileSync(p));
}

/** Every file under `dir`, relative, sorted (directories are implied by the paths). */
function tree(dir) {
  const out = [];
  const walk = (d, rel) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** Records onProgress calls and checks the contract's rules on them. */
function progressRecorder() {
  const calls = [];
  const fn = (downloaded, total, info) => {
    calls.push({ downloaded, total, info, at: process.hrtime.bigint() });
  };
  fn.calls = calls;
  /** Monotonic, never above total, ending with exactly (total, total) and phase 'done'. */
  fn.assertWellFormed = (expectedTotal) => {
    assert.ok(calls.length > 0, 'onProgress was called');
    for (let i = 1; i < calls.length; i++) {
      assert.ok(calls[i].downloaded >= calls[i - 1].downloaded, `downloaded went back at call ${i}`);
      assert.ok(calls[i].total >= calls[i - 1].total, `total went back at call ${i}`);
    }
    for (const c of calls) {
      assert.ok(c.downloaded <= c.total, `downloaded ${c.downloaded} > total ${c.total}`);
      assert.equal(typeof c.info.bytesPerSecond, 'number');
      assert.ok(['preflight', 'verifying', 'downloading', 'done'].includes(c.info.phase), c.info.phase);
    }
    for (const c of calls.slice(0, -1)) assert.ok(c.total > 0, 'no (0, 0) calls before sizes are known');
    const last = calls[calls.length - 1];
    assert.equal(last.downloaded, last.total);
    assert.equal(last.info.phase, 'done');
    if (expectedTotal !== undefined) assert.equal(last.total, expectedTotal);
    // At most one call per 100 ms, except the closing one.
    for (let i = 1; i < calls.length - 1; i++) {
      const gapMs = Number(calls[i].at - calls[i - 1].at) / 1e6;
      assert.ok(gapMs >= 60, `calls ${i - 1} and ${i} only ${gapMs.toFixed(1)} ms apart`);
    }
  };
  return fn;
}

/** Resolves when `cond()` is truthy, polling state; fails after `ms`. */
async function waitFor(cond, ms = 15000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Asserts `promise` rejects with a DownloadError whose message matches `re`; returns the error. */
async function rejectsDownload(promise, re) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected a rejection');
  assert.ok(err instanceof g.DownloadError, `expected DownloadError, got ${err && err.name}: ${err && err.message}`);
  assert.equal(err.code, 'DOWNLOAD_FAILED');
  if (re) assert.match(err.message, re);
  return err;
}

/** Files the library leaves only while a download is unfinished. */
function leftovers(root) {
  return tree(path.join(root, 'models')).filter((f) => /\.partial$|\.partial\.meta$|\.lock$/.test(f));
}

/** Bytes the CDN sent for a file handle (all CDN paths of that content). */
function cdnBytes(srv, handle) {
  return srv.statsFor(handle.cdnPath).bytesSent;
}

/**
 * GETs of a file that fetched its content, leaving out the header reads of the compatibility
 * preflight (its first 8 bytes, a GGUF header prefix, a safetensors header from byte 8).
 */
function bodyGets(srv, handle) {
  const st = srv.statsFor(handle.cdnPath || handle.path);
  const headerReads = st.ranges.filter((r) => /^bytes=(0-7|0-2097151|8-\d+)$/.test(r)).length;
  return st.get - headerReads;
}

const CHILD = path.join(__dirname, 'download-child.js');

/** Starts a download in another Node process; `lines` collects its JSON output. */
function startChild(root, config) {
  const { spawn } = require('node:child_process');
  const { once } = require('node:events');
  const readline = require('node:readline');
  const child = spawn(process.execPath, [CHILD, root, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => child.lines.push(JSON.parse(l)));
  child.exited = once(child, 'exit');
  return child;
}

module.exports = { startChild, g, FAST, setup, bytes, sha256, sha256File, tree, progressRecorder, waitFor, rejectsDownload, leftovers, cdnBytes, bodyGets };
