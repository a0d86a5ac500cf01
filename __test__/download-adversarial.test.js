'use strict';
// Adversarial cases: ways a download could lose data, leave a file that looks whole but is not,
// hang, leak state files, mislead, or crash the process. Each test failed before its fix.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const { g, FAST, setup, bytes, sha256, sha256File, tree, rejectsDownload, leftovers } = require('./helpers/download.js');

const CHILD = path.join(__dirname, 'helpers', 'download-child.js');

test('an async onProgress/onComponentStart that rejects never becomes an unhandled rejection', async (t) => {
  const { srv, hf } = await setup(t);
  const dit = srv.addFile('org/m', 'dit.bin', bytes(300000, 1));
  srv.addFile('org/m', 'vae.bin', bytes(1000, 2));
  srv.fault(dit.cdnPath, { slow: 1 << 20 });
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  let calls = 0;
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/m', file: 'dit.bin', name: 'Async Thrower', type: 'diffusion', ...hf,
    components: [{ role: 'vae', source: 'huggingface', repo: 'org/m', file: 'vae.bin' }],
    onProgress: async () => {
      calls++;
      throw new Error('async UI bug');
    },
    onComponentStart: async () => {
      throw new Error('async UI bug');
    },
  });
  // Rejections surface after the microtask queue drains.
  await new Promise((r) => setImmediate(r));
  assert.ok(info.components.vae);
  assert.ok(calls >= 2);
  assert.deepEqual(unhandled.map((e) => e.message), []);
});

test('a token with surrounding whitespace (a .env line ending in \\r) is still sent, trimmed', async (t) => {
  const { srv, hf } = await setup(t, { token: 'hf_good', crossHost: true });
  const f = srv.addFile('org/gated', 'ae.safetensors', bytes(20000, 21), { gated: true });
  const info = await g.modelManager.downloadModel({
    source: 'huggingface', repo: 'org/gated', file: 'ae.safetensors', name: 'Gated', type: 'diffusion', ...hf, hfToken: ' hf_good\r\n',
  });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.ok(srv.statsFor(f.path).authorization.every((a) => a === 'Bearer hf_good'));
});

test('a variant never overwrites a file another record uses with different content', async (t) => {
  const { srv, hf } = await setup(t);
  srv.addFile('org/a', 'dit-a.bin', bytes(5000, 1));
  srv.addFile('org/b', 'dit-b.bin', bytes(5000, 2));
  const vaeA = srv.addFile('org/a', 'ae.safetensors', bytes(8000, 3));
  srv.addFile('org/b', 'ae.safetensors', bytes(8000, 4)); // same file name, other content
  const cfg = (v) => ({
    source: 'huggingface', repo: `org/${v}`, file: `dit-${v}.bin`, name: `Variant ${v}`, type: 'diffusion', modelDirectory: 'shared', ...hf,
    components: [{ role: 'vae', source: 'huggingface', repo: `org/${v}`, file: 'ae.safetensors' }],
  });
  const a = await g.modelManager.downloadModel(cfg('a'));
  const err = await rejectsDownload(g.modelManager.downloadModel(cfg('b')), /Model file already exists: ae\.safetensors/);
  assert.match(err.details.reason, /variant-a/);
  assert.equal(sha256File(a.components.vae.path), vaeA.sha256);
  assert.equal(await g.modelManager.verifyModel('variant-a'), true);
  assert.deepEqual(leftovers(path.dirname(path.dirname(path.dirname(a.path)))), []);
});

test('a crash after the rename but before the state files were removed leaves nothing behind next time', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'model.bin', bytes(50000, 5));
  const dest = path.join(root, 'models', 'llm', 'model.bin');
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, bytes(50000, 5));
  fs.writeFileSync(`${dest}.partial.meta`, JSON.stringify({ version: 1, url: f.url, total: 50000, sha256: f.sha256 }));
  fs.writeFileSync(`${dest}.partial`, bytes(100, 5));
  const info = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'M', type: 'llm', ...hf });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(srv.statsFor(f.cdnPath).get, 0);
  assert.deepEqual(leftovers(root), []);
});

test('a redirect loop and a redirect to another scheme fail at once with a clear message', async (t) => {
  const { srv, root } = await setup(t);
  srv.addRedirect('/loop/a.bin', '/loop/b.bin');
  srv.addRedirect('/loop/b.bin', '/loop/a.bin');
  srv.addRedirect('/ftp/x.bin', 'ftp://127.0.0.1/x.bin');
  const started = Date.now();
  await rejectsDownload(g.modelManager.downloadModel({ source: 'url', url: `${srv.url}/loop/a.bin`, name: 'Loop', type: 'llm', ...FAST }), /too many redirects/);
  await rejectsDownload(g.modelManager.downloadModel({ source: 'url', url: `${srv.url}/ftp/x.bin`, name: 'Ftp', type: 'llm', ...FAST }), /non-http\(s\) URL: ftp:/);
  assert.ok(Date.now() - started < 3000);
  assert.deepEqual(tree(path.join(root, 'models')), []);
});

test('a directory where the file should go fails before any byte is fetched', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'model.bin', bytes(50000, 5));
  fs.mkdirSync(path.join(root, 'models', 'llm', 'model.bin'), { recursive: true });
  const err = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'model.bin', name: 'M', type: 'llm', ...hf }).catch((e) => e);
  assert.ok(err instanceof Error);
  assert.match(err.message, /model\.bin/);
  assert.equal(srv.statsFor(f.cdnPath).get, 0);
});

test('empty (0-byte) files download and verify', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'empty.bin', Buffer.alloc(0));
  const raw = srv.addRawFile('/files/empty.bin', Buffer.alloc(0));
  const a = await g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'empty.bin', name: 'Empty HF', type: 'llm', ...hf });
  assert.equal(a.size, 0);
  assert.equal(a.checksum, `sha256:${f.sha256}`);
  const b = await g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Empty Url', type: 'diffusion' });
  assert.equal(b.size, 0);
  assert.deepEqual(leftovers(root), []);
});

/** Runs download-child.js under `ulimit -f <kib>`, so writes past that size fail with EFBIG. */
function childWithFileSizeLimit(root, config, kib) {
  const child = spawn('bash', ['-c', `ulimit -f ${kib}; exec "$0" "$@"`, process.execPath, CHILD, root, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => child.lines.push(JSON.parse(l)));
  child.exited = once(child, 'exit');
  return child;
}

test('a write error (file size limit) stops the transfer at once and keeps the partial for a resume', { skip: process.platform === 'win32' }, async (t) => {
  const { srv, root } = await setup(t);
  const SIZE = 4 << 20;
  const raw = srv.addRawFile('/files/big.bin', bytes(SIZE, 31));
  srv.fault(raw.path, { slow: 8 << 20 });
  const config = { source: 'url', url: raw.url, name: 'Big', type: 'llm', ...FAST };
  const child = childWithFileSizeLimit(root, config, 1024);
  const [code] = await child.exited;
  assert.equal(code, 1);
  const { error } = child.lines[child.lines.length - 1];
  assert.equal(error.name, 'InsufficientResourcesError', JSON.stringify(error));
  assert.match(error.message, /file size limit|too large/i);
  const dest = path.join(root, 'models', 'llm', 'big.bin');
  const kept = fs.statSync(`${dest}.partial`).size;
  assert.equal(kept, 1 << 20);
  assert.ok(srv.statsFor(raw.path).bytesSent < 3 << 20, `the transfer went on after the error: ${srv.statsFor(raw.path).bytesSent} bytes sent`);
  // Without the limit, the next attempt continues from the kept bytes.
  srv.clearFaults();
  srv.resetStats();
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${raw.sha256}`);
  assert.deepEqual(srv.statsFor(raw.path).ranges, [`bytes=${kept}-`]);
});

test('cancelling while a large partial is being hashed for a resume stops at once', async (t) => {
  const { srv, root } = await setup(t);
  // The server claims 4 GiB (HEAD only); a sparse partial of that size with valid resume state
  // takes seconds to hash, which a cancel must not wait for.
  const BIG = 4 * 2 ** 30;
  const raw = srv.addRawFile('/files/huge.bin', bytes(1000, 3));
  srv.fault(raw.path, { method: 'HEAD', headers: { 'Content-Length': String(BIG) } });
  const dest = path.join(root, 'models', 'llm', 'huge.bin');
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const fd = fs.openSync(`${dest}.partial`, 'w');
  fs.ftruncateSync(fd, BIG - 1);
  fs.closeSync(fd);
  fs.writeFileSync(`${dest}.partial.meta`, JSON.stringify({ version: 1, url: raw.url, etag: `"${raw.sha256}"`, total: BIG }));
  const controller = new AbortController();
  let verifying = 0;
  const p = g.modelManager.downloadModel({
    source: 'url', url: raw.url, name: 'Huge', type: 'llm', ...FAST, connections: 1, signal: controller.signal,
    onProgress: (d, total, info) => {
      if (info.phase === 'verifying' && d > 0) verifying++;
    },
  });
  p.catch(() => {});
  const deadline = Date.now() + 20000;
  while (verifying === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(verifying > 0, 'the resume hash reported progress');
  const t0 = Date.now();
  controller.abort();
  await rejectsDownload(p, /Download cancelled/);
  const ms = Date.now() - t0;
  assert.ok(ms < 1000, `cancel took ${ms} ms`);
  assert.equal(fs.statSync(`${dest}.partial`).size, BIG - 1, 'the partial is kept');
  assert.equal(srv.statsFor(raw.path).get, 0);
});

test('deleteModel of a variant while another variant downloads keeps the shared file the download holds', async (t) => {
  const { srv, hf } = await setup(t);
  srv.addFile('org/m', 'dit-a.bin', bytes(5000, 1));
  const ditB = srv.addFile('org/m', 'dit-b.bin', bytes(600000, 2));
  const vae = srv.addFile('org/m', 'vae.bin', bytes(8000, 3));
  const cfg = (v) => ({
    source: 'huggingface', repo: 'org/m', file: `dit-${v}.bin`, name: `Variant ${v}`, type: 'diffusion', modelDirectory: 'shared', ...hf, ...FAST,
    components: [{ role: 'vae', source: 'huggingface', repo: 'org/m', file: 'vae.bin' }],
  });
  const a = await g.modelManager.downloadModel(cfg('a'));
  srv.fault(ditB.cdnPath, { slow: 1 << 20 });
  let seen = 0;
  const pb = g.modelManager.downloadModel({ ...cfg('b'), onProgress: (d) => { seen = d; } });
  pb.catch(() => {});
  const deadline = Date.now() + 15000;
  while (seen === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(seen > 0, 'variant b is transferring its DiT');
  // Variant b has verified the shared VAE but has no record yet: its download lock on the file
  // keeps the delete from removing it, so b neither loses it nor fetches it again.
  const vaeGets = srv.statsFor(vae.cdnPath).get;
  await g.modelManager.deleteModel('variant-a');
  assert.equal(fs.existsSync(a.components.vae.path), true);
  assert.equal(fs.existsSync(a.components.diffusion_model.path), false);
  await assert.rejects(g.modelManager.getModelInfo('variant-a'), g.ModelNotFoundError);
  srv.clearFaults();
  const b = await pb;
  assert.equal(srv.statsFor(vae.cdnPath).get, vaeGets, 'the shared VAE was not fetched again');
  assert.equal(b.components.vae.path, a.components.vae.path);
  assert.equal(sha256File(b.components.vae.path), vae.sha256);
  assert.equal(await g.modelManager.verifyModel('variant-b'), true);
});

test('a server that compresses bodies on the fly is asked not to, so the bytes saved are the file', async (t) => {
  const { srv, root } = await setup(t);
  const content = Buffer.alloc(200000, 'genai ');
  const raw = srv.addRawFile('/files/compressible.bin', content);
  srv.fault(raw.path, { gzip: true, method: '*' });
  const info = await g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Compressible', type: 'llm', ...FAST });
  assert.equal(info.size, content.length);
  assert.ok(fs.readFileSync(path.join(root, 'models', 'llm', 'compressible.bin')).equals(content));
  assert.ok(srv.requests.every((r) => r.headers['accept-encoding'] === 'identity'));
});

test('a sign-in page served with 200 in place of an unverified model is refused, not saved', async (t) => {
  const { srv, root } = await setup(t);
  const page = Buffer.from('<!DOCTYPE html>\n<html><body><form>Sign in to the hotel Wi-Fi</form></body></html>\n');
  const gguf = srv.addRawFile('/files/tiny.gguf', page);
  const st = srv.addRawFile('/files/vae.safetensors', page);
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'url', url: gguf.url, name: 'Portal Gguf', type: 'llm', ...FAST }),
    /did not send tiny\.gguf: it is not a GGUF file \(it starts with "<!DOCTYPE html> <html>/,
  );
  assert.equal(err.details.url, gguf.url);
  await rejectsDownload(
    g.modelManager.downloadModel({ source: 'url', url: st.url, name: 'Portal St', type: 'diffusion', ...FAST }),
    /it is not a safetensors file/,
  );
  assert.deepEqual(await g.modelManager.listModels(), []);
  assert.deepEqual(tree(path.join(root, 'models')).filter((f) => /tiny\.gguf|vae\.safetensors/.test(f)), []);
  assert.deepEqual(leftovers(root), []);
});

test('errors never carry the pre-signed CDN link of a redirect', async (t) => {
  const { srv, hf } = await setup(t);
  const f = srv.addFile('org/m', 'dit.bin', bytes(5000, 9));
  srv.fault(f.cdnPath, { status: 500 });
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'dit.bin', name: 'Signed', type: 'llm', ...hf, ...FAST }),
  );
  const text = JSON.stringify({ message: err.message, details: err.details });
  assert.doesNotMatch(text, /X-Amz-Signature|X-Amz-Expires/);
  // A connection refused on the CDN: reqwest's own message quotes the URL it tried.
  srv.clearFaults();
  srv.fault(f.cdnPath, { hangUp: true });
  const err2 = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'huggingface', repo: 'org/m', file: 'dit.bin', name: 'Signed 2', type: 'llm', ...hf, ...FAST }),
  );
  assert.doesNotMatch(JSON.stringify({ message: err2.message, details: err2.details }), /X-Amz-Signature/);
});

test('an HTTPS server whose certificate the system does not trust fails at once, saying so', async (t) => {
  // A self-signed certificate for 127.0.0.1 (fixtures/tls), in no system store.
  const https = require('node:https');
  const tls = path.join(__dirname, 'fixtures', 'tls');
  let connections = 0;
  const server = https.createServer(
    { key: fs.readFileSync(path.join(tls, 'key.pem')), cert: fs.readFileSync(path.join(tls, 'cert.pem')) },
    (req, res) => res.end('never served'),
  );
  server.on('connection', () => connections++);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  await setup(t);
  const url = `https://127.0.0.1:${server.address().port}/model.safetensors?X-Amz-Signature=abc`;
  const err = await rejectsDownload(
    g.modelManager.downloadModel({ source: 'url', url, name: 'Untrusted', type: 'diffusion', ...FAST }),
  );
  assert.match(err.message, /not trusted by this system/);
  assert.match(err.message, /certificate store/);
  assert.doesNotMatch(err.message, /X-Amz-Signature/);
  // One attempt: a certificate does not become trusted by retrying.
  assert.equal(connections, 1);
  assert.deepEqual(await g.modelManager.listModels(), []);
});
