'use strict';
// Tests for the Hugging Face-like fixture server in __test__/fixtures/hf-server.js.
// Run: node --test __test__/hf-server.test.js

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const { once } = require('node:events');
const { startHfServer } = require('./fixtures/hf-server');

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

function bytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Plain node:http request on a fresh connection; resolves once the response closes (never rejects). */
function request(url, { method = 'GET', headers = {}, onResponse } = {}) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (v) => {
      if (!settled) {
        settled = true;
        resolve(v);
      }
    };
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      let error = null;
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => { error = error || new Error('aborted'); });
      res.on('error', (e) => { error = error || e; });
      res.on('close', () => finish({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error,
      }));
      if (onResponse) onResponse(res, req);
    });
    req.on('error', (e) => finish({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false, error: e }));
    req.end();
  });
}

const hex64 = /^[0-9a-f]{64}$/;

test('LFS resolve: 302 to the CDN with HF headers, CDN serves the bytes', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(10000);
  const f = srv.addFile('org/model', 'model-q4.gguf', data);
  assert.equal(f.sha256, sha256(data));
  assert.equal(srv.sha256Of('org/model', 'model-q4.gguf'), sha256(data));
  assert.equal(f.url, `${srv.url}/org/model/resolve/main/model-q4.gguf`);
  assert.equal(f.path, '/org/model/resolve/main/model-q4.gguf');
  assert.equal(f.cdnPath, `/cdn/${sha256(data)}`);

  for (const method of ['HEAD', 'GET']) {
    const r = await fetch(f.url, { method, redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('x-linked-etag'), `"${f.sha256}"`);
    assert.equal(r.headers.get('x-linked-size'), '10000');
    assert.equal(r.headers.get('etag'), `"${f.sha256}"`);
    assert.equal(r.headers.get('x-repo-commit'), f.commit);
    assert.match(f.commit, /^[0-9a-f]{40}$/);
    const loc = r.headers.get('location');
    assert.ok(loc.startsWith(`${srv.url}/cdn/${f.sha256}?`), loc);
    assert.equal(loc, f.cdnUrl);
    assert.notEqual(r.headers.get('content-length'), '10000'); // the redirect body, not the file
    await r.arrayBuffer();
  }

  const r = await fetch(f.url); // follows the redirect
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-length'), '10000');
  assert.equal(r.headers.get('etag'), `"${f.sha256}"`);
  assert.equal(r.headers.get('accept-ranges'), 'bytes');
  assert.ok(!Number.isNaN(Date.parse(r.headers.get('last-modified'))));
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data));

  const head = await fetch(f.cdnUrl, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '10000');
  assert.equal(head.headers.get('etag'), `"${f.sha256}"`);

  const rs = srv.stats[f.path];
  assert.equal(rs.head, 1);
  assert.equal(rs.get, 2);
  const cs = srv.stats[f.cdnPath];
  assert.equal(cs.get, 1);
  assert.equal(cs.head, 1);
  assert.equal(cs.bytesSent, 10000);
});

test('nested and percent-encoded paths, non-LFS files, revisions and commits', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const vae = bytes(3000, 2);
  const f = srv.addFile('Comfy-Org/flux2-klein', 'split_files/vae/flux2 vae.safetensors', vae);
  assert.equal(f.url, `${srv.url}/Comfy-Org/flux2-klein/resolve/main/split_files/vae/flux2%20vae.safetensors`);
  const a = await fetch(f.url);
  assert.ok(Buffer.from(await a.arrayBuffer()).equals(vae));
  // genai-electron 0.5 encoded the whole file path with encodeURIComponent: %2F separators.
  const b = await fetch(`${srv.url}/Comfy-Org/flux2-klein/resolve/main/${encodeURIComponent(f.file)}`);
  assert.equal(b.status, 200);
  assert.ok(Buffer.from(await b.arrayBuffer()).equals(vae));
  assert.equal(srv.stats[f.path].get, 2); // both spellings count under the decoded path

  // Non-LFS: served directly, git blob sha1 ETag, no X-Linked-*.
  const cfg = Buffer.from('{"a":1}\n');
  const c = srv.addFile('Comfy-Org/flux2-klein', 'config.json', cfg, { lfs: false });
  const r = await fetch(c.url, { redirect: 'manual' });
  assert.equal(r.status, 200);
  const gitSha = crypto.createHash('sha1').update(`blob ${cfg.length}\0`).update(cfg).digest('hex');
  assert.equal(r.headers.get('etag'), `"${gitSha}"`);
  assert.equal(r.headers.get('x-linked-etag'), null);
  assert.ok(r.headers.get('x-repo-commit'));
  assert.equal(await r.text(), cfg.toString());
  const rr = await fetch(c.url, { headers: { Range: 'bytes=1-3' } });
  assert.equal(rr.status, 206);
  assert.equal(await rr.text(), '"a"');

  // Revisions: a branch with '/', pinning by commit sha, replacement changes sha and commit.
  const v1 = srv.addFile('org/m', 'w.bin', Buffer.from('version one'), { revision: 'refs/pr/1' });
  const main1 = srv.addFile('org/m', 'w.bin', Buffer.from('main one'));
  assert.equal(v1.url, `${srv.url}/org/m/resolve/refs%2Fpr%2F1/w.bin`);
  assert.equal(await (await fetch(v1.url)).text(), 'version one');
  assert.equal(await (await fetch(`${srv.url}/org/m/resolve/${main1.commit}/w.bin`)).text(), 'main one');
  assert.equal(srv.commitOf('org/m'), main1.commit);
  const main2 = srv.addFile('org/m', 'w.bin', Buffer.from('main two'));
  assert.notEqual(main2.commit, main1.commit);
  assert.notEqual(main2.sha256, main1.sha256);
  assert.equal(await (await fetch(main2.url)).text(), 'main two');
  const old = await fetch(`${srv.url}/org/m/resolve/${main1.commit}/w.bin`);
  assert.equal(old.status, 404);
  assert.equal(old.headers.get('x-error-code'), 'RevisionNotFound');

  // Single-segment and dataset repos.
  const g = srv.addFile('gpt2', 'vocab.txt', Buffer.from('v'));
  assert.equal(await (await fetch(g.url)).text(), 'v');
  const d = srv.addFile('datasets/org/set', 'a/b.txt', Buffer.from('d'));
  assert.equal(await (await fetch(d.url)).text(), 'd');
});

test('404s carry HF error codes; missingRepoStatus emulates anonymous 401', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  srv.addFile('org/model', 'a.gguf', Buffer.from('x'));
  const cases = [
    ['/nobody/nothing/resolve/main/a.gguf', 404, 'RepoNotFound'],
    ['/org/model/resolve/nope/a.gguf', 404, 'RevisionNotFound'],
    ['/org/model/resolve/main/b.gguf', 404, 'EntryNotFound'],
  ];
  for (const [p, status, code] of cases) {
    for (const method of ['GET', 'HEAD']) {
      const r = await fetch(srv.url + p, { method, redirect: 'manual' });
      assert.equal(r.status, status, p);
      assert.equal(r.headers.get('x-error-code'), code, p);
      assert.ok(r.headers.get('x-error-message'));
      if (method === 'GET') assert.ok((await r.json()).error);
    }
  }
  assert.equal((await fetch(`${srv.url}/cdn/${'0'.repeat(64)}`)).status, 404);
  assert.equal((await fetch(`${srv.url}/totally/unknown`)).status, 404);
  const post = await fetch(srv.url + '/org/model/resolve/main/a.gguf', { method: 'POST' });
  assert.equal(post.status, 405);

  const srv2 = await startHfServer({ missingRepoStatus: 401 });
  t.after(() => srv2.close());
  const r = await fetch(`${srv2.url}/org/private/resolve/main/a.gguf`);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('x-error-code'), 'RepoNotFound');
});

test('gated repos: 401 without or with a bad token, 403 when forbidden, access with the token', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const f = srv.addFile('black-forest-labs/FLUX.2-dev', 'ae.safetensors', bytes(500), { gated: true });
  srv.setToken('hf_good');
  const get = (token) => fetch(f.url, { redirect: 'manual', headers: token ? { Authorization: `Bearer ${token}` } : {} });

  let r = await get(null);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('x-error-code'), 'GatedRepo');
  r = await get('hf_bad');
  assert.equal(r.status, 401);
  r = await fetch(f.url, { method: 'HEAD', redirect: 'manual' });
  assert.equal(r.status, 401);
  r = await get('hf_good');
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('x-linked-etag'), `"${f.sha256}"`);

  srv.setGated('black-forest-labs/FLUX.2-dev', 'forbidden');
  r = await get('hf_good');
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('x-error-code'), 'GatedRepo');
  assert.match(r.headers.get('x-error-message'), /authorized list/);
  assert.equal((await get(null)).status, 401);

  srv.setGated('black-forest-labs/FLUX.2-dev', false);
  assert.equal((await get(null)).status, 302);
  // A bad token on a public repo is accepted unless rejectInvalidTokens.
  assert.equal((await get('hf_bad')).status, 302);
  const strict = await startHfServer({ rejectInvalidTokens: true, token: ['t1', 't2'] });
  t.after(() => strict.close());
  const s = strict.addFile('org/pub', 'x.bin', Buffer.from('x'));
  assert.equal((await fetch(s.url, { headers: { Authorization: 'Bearer nope' } })).status, 401);
  assert.equal((await fetch(s.url, { headers: { Authorization: 'Bearer t2' } })).status, 200);
  assert.equal((await fetch(s.url)).status, 200);

  assert.deepEqual(srv.stats[f.path].authorization.slice(0, 2), ['Bearer hf_bad', 'Bearer hf_good']);
});

test('cross-host redirect: the CDN lives on another origin; Authorization is observable per path', async (t) => {
  const srv = await startHfServer({ crossHost: true });
  t.after(() => srv.close());
  srv.setToken('tok');
  const data = bytes(4096, 3);
  const f = srv.addFile('org/gated', 'm.gguf', data, { gated: true });
  assert.notEqual(srv.cdnOrigin, srv.url);

  const m = await fetch(f.url, { redirect: 'manual', headers: { Authorization: 'Bearer tok' } });
  assert.equal(m.status, 302);
  assert.ok(m.headers.get('location').startsWith(`${srv.cdnOrigin}/cdn/`));

  srv.resetStats();
  const r = await fetch(f.url, { headers: { Authorization: 'Bearer tok' } });
  assert.equal(r.status, 200);
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data));
  assert.deepEqual(srv.statsFor(f.path).authorization, ['Bearer tok']);
  assert.deepEqual(srv.statsFor(f.cdnPath).authorization, []); // fetch drops it across origins
  assert.deepEqual(srv.requests.map((q) => [q.listener, q.path]), [['main', f.path], ['cdn', f.cdnPath]]);

  // Same-origin redirect (per-file override): fetch keeps the header, and stats show it.
  const g = srv.addFile('org/pub', 'n.gguf', bytes(4096, 33), { crossHost: false });
  srv.resetStats();
  await (await fetch(g.url, { headers: { Authorization: 'Bearer tok' } })).arrayBuffer();
  assert.deepEqual(srv.statsFor(g.cdnPath).authorization, ['Bearer tok']);
  // A client that forwards it across hosts is caught too.
  const loc = (await fetch(f.url, { redirect: 'manual', headers: { Authorization: 'Bearer tok' } })).headers.get('location');
  await request(loc, { headers: { Authorization: 'Bearer tok' } });
  assert.deepEqual(srv.statsFor(f.cdnPath).authorization, ['Bearer tok']);
});

test('redirect options: 307, relative Location', async (t) => {
  const srv = await startHfServer({ redirectStatus: 307, relativeRedirect: true });
  t.after(() => srv.close());
  const f = srv.addFile('org/m', 'a.bin', Buffer.from('abc'));
  const r = await fetch(f.url, { redirect: 'manual' });
  assert.equal(r.status, 307);
  assert.ok(r.headers.get('location').startsWith(`/cdn/${f.sha256}?`));
  assert.equal(await (await fetch(f.url)).text(), 'abc');
  const g = srv.addFile('org/m', 'b.bin', Buffer.from('b'), { relativeRedirect: false, redirectStatus: 302 });
  const r2 = await fetch(g.url, { redirect: 'manual' });
  assert.equal(r2.status, 302);
  assert.ok(r2.headers.get('location').startsWith('http://127.0.0.1:'));
});

test('CDN URLs are signed; expireCdnUrls invalidates the old ones', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const f = srv.addFile('org/m', 'a.bin', bytes(100));
  assert.equal((await fetch(srv.url + f.cdnPath)).status, 403);
  assert.equal((await fetch(`${srv.url}${f.cdnPath}?X-Amz-Signature=wrong`)).status, 403);
  const oldUrl = f.cdnUrl;
  assert.equal((await fetch(oldUrl)).status, 200);
  srv.expireCdnUrls();
  const r = await fetch(oldUrl);
  assert.equal(r.status, 403);
  assert.match(await r.text(), /AccessDenied/);
  assert.notEqual(f.cdnUrl, oldUrl);
  assert.equal((await fetch(f.url)).status, 200); // re-resolving gets a fresh URL

  const open = await startHfServer({ signedUrls: false });
  t.after(() => open.close());
  const g = open.addFile('org/m', 'a.bin', bytes(100));
  assert.equal(g.cdnUrl, open.url + g.cdnPath);
  assert.equal((await fetch(open.url + g.cdnPath)).status, 200);
});

test('ranges: N-, N-M, suffix, clamping, 416, multi-range ignored, If-Range', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(1000, 4);
  const f = srv.addFile('org/m', 'r.bin', data);
  const etag = `"${f.sha256}"`;
  const get = (headers) => request(f.cdnUrl, { headers });

  let r = await get({ Range: 'bytes=100-' });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 100-999/1000');
  assert.equal(r.headers['content-length'], '900');
  assert.ok(r.body.equals(data.subarray(100)));

  r = await get({ Range: 'bytes=10-19' });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 10-19/1000');
  assert.ok(r.body.equals(data.subarray(10, 20)));

  r = await get({ Range: 'bytes=-10' });
  assert.equal(r.headers['content-range'], 'bytes 990-999/1000');
  assert.ok(r.body.equals(data.subarray(990)));

  r = await get({ Range: 'bytes=995-5000' });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 995-999/1000');

  r = await get({ Range: 'bytes=1000-' });
  assert.equal(r.status, 416);
  assert.equal(r.headers['content-range'], 'bytes */1000');

  r = await get({ Range: 'bytes=0-1,5-6' });
  assert.equal(r.status, 200);
  assert.ok(r.body.equals(data));

  r = await get({ Range: 'bytes=500-', 'If-Range': etag });
  assert.equal(r.status, 206);
  r = await get({ Range: 'bytes=500-', 'If-Range': '"something-else"' });
  assert.equal(r.status, 200);
  assert.ok(r.body.equals(data));
  r = await get({ Range: 'bytes=500-', 'If-Range': `W/${etag}` }); // weak never matches
  assert.equal(r.status, 200);
  const lm = (await get({})).headers['last-modified'];
  r = await get({ Range: 'bytes=500-', 'If-Range': lm });
  assert.equal(r.status, 206);
  r = await get({ Range: 'bytes=500-', 'If-Range': new Date(Date.parse(lm) - 1000).toUTCString() });
  assert.equal(r.status, 200);

  const s = srv.stats[f.cdnPath];
  assert.deepEqual(s.ranges.slice(0, 3), ['bytes=100-', 'bytes=10-19', 'bytes=-10']);
  assert.deepEqual(s.statuses.slice(0, 6), [206, 206, 206, 206, 416, 200]);
});

test('fault dropAfter: N body bytes then the socket closes; reset; one-shot then healthy', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(200000, 5);
  const f = srv.addFile('org/m', 'big.bin', data);
  const h = srv.fault(f.cdnPath, { dropAfter: 12345, times: 1 });
  const drops = [];
  srv.on('fault', (e) => drops.push(e));

  const head = await request(f.cdnUrl, { method: 'HEAD' }); // body faults default to GET only
  assert.equal(head.status, 200);
  assert.equal(h.hits, 0);

  let r = await request(f.cdnUrl);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], '200000');
  assert.equal(r.body.length, 12345);
  assert.ok(r.body.equals(data.subarray(0, 12345)));
  assert.equal(r.complete, false);
  assert.ok(r.error);
  assert.equal(h.hits, 1);
  assert.equal(h.remaining, 0);
  assert.equal(drops[0].type, 'drop');
  assert.equal(drops[0].bytes, 12345);

  // Resume: the next request is healthy and only the tail is sent.
  srv.resetStats();
  r = await request(f.cdnUrl, { headers: { Range: 'bytes=12345-' } });
  assert.equal(r.status, 206);
  assert.ok(Buffer.concat([data.subarray(0, 12345), r.body]).equals(data));
  assert.equal(srv.stats[f.cdnPath].bytesSent, 200000 - 12345);
  assert.deepEqual(srv.stats[f.cdnPath].ranges, ['bytes=12345-']);

  // dropAfter: 0 sends headers only; reset uses RST; fetch sees a failed body.
  srv.fault(f.cdnPath, { dropAfter: 0, reset: true, times: 1 });
  r = await request(f.cdnUrl);
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  assert.ok(r.error);
  srv.fault(f.cdnPath, { dropAfter: 100, times: 1 });
  const resp = await fetch(f.cdnUrl);
  await assert.rejects(resp.arrayBuffer());
  assert.equal((await request(f.cdnUrl)).body.length, 200000);
});

test('fault stall: finite pause resumes; infinite stall ends when the client leaves', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(50000, 6);
  const f = srv.addFile('org/m', 's.bin', data);

  srv.fault(f.cdnPath, { stall: 300, stallAfter: 1000, times: 1 });
  let first = 0;
  const t0 = Date.now();
  const r = await request(f.cdnUrl, {
    onResponse: (res) => res.once('data', () => { first = Date.now(); }),
  });
  assert.ok(r.body.equals(data));
  assert.ok(Date.now() - first >= 250, `stalled only ${Date.now() - first} ms`);
  assert.ok(Date.now() - t0 < 3000);

  srv.fault(f.cdnPath, { stall: true, times: 1 }); // forever, after half the body
  let received = 0;
  const stalled = once(srv, 'fault');
  const pending = request(f.cdnUrl, {
    onResponse: (res) => res.on('data', (c) => { received += c.length; }),
  });
  const [ev] = await stalled;
  assert.equal(ev.type, 'stall');
  assert.equal(ev.bytes, 25000);
  // The client sees exactly half, then nothing; it gives up (as a stall watchdog would).
  while (received < 25000) await new Promise((r2) => setImmediate(r2));
  assert.equal(received, 25000);
  assert.equal(srv.stats[f.cdnPath].active, 1); // the connection is held open
  // Other requests are still served meanwhile.
  assert.equal((await request(f.url, { method: 'HEAD' })).status, 302);
  // Closing the server ends the stalled response; the client sees an error, close does not hang.
  await srv.close();
  const done = await pending;
  assert.ok(done.error);
  assert.equal(done.body.length, 25000);
});

test('fault stall forever then client abort releases the server-side response', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const f = srv.addFile('org/m', 's.bin', bytes(8000));
  srv.fault(f.cdnPath, { stall: Infinity, stallAfter: 0 });
  const stalled = once(srv, 'fault');
  let clientReq;
  const pending = request(f.cdnUrl, { onResponse: (res, req) => { clientReq = req; } });
  await stalled;
  while (!clientReq) await new Promise((r) => setImmediate(r));
  clientReq.destroy();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  while (srv.stats[f.cdnPath].active !== 0) await new Promise((r2) => setImmediate(r2));
});

test('fault status: 500, 503, 429 + Retry-After; times and skip', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const f = srv.addFile('org/m', 'a.bin', Buffer.from('hello'));
  srv.fault(f.path, { status: 500, times: 1 });
  srv.fault(f.path, { status: 503, times: 1, skip: 1 });
  srv.fault(f.path, { status: 429, retryAfter: 2, times: 1, skip: 2 });
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    const r = await fetch(f.url);
    statuses.push(r.status);
    if (r.status === 429) assert.equal(r.headers.get('retry-after'), '2');
    if (r.status === 500 || r.status === 503) assert.equal(r.headers.get('retry-after'), null);
    if (r.status === 200) assert.equal(await r.text(), 'hello');
    else await r.arrayBuffer();
  }
  assert.deepEqual(statuses, [500, 503, 429, 200]);

  // status faults apply to HEAD as well by default; method narrows it.
  const h = srv.fault(f.path, { status: 503, method: 'GET' });
  assert.equal((await fetch(f.url, { method: 'HEAD', redirect: 'manual' })).status, 302);
  assert.equal((await fetch(f.url)).status, 503);
  h.remove();
  assert.equal((await fetch(f.url)).status, 200);
  // persistent until cleared
  srv.fault(f.cdnPath, { status: 500 });
  assert.equal((await fetch(f.url)).status, 500);
  assert.equal((await fetch(f.url)).status, 500);
  srv.clearFaults();
  assert.equal((await fetch(f.url)).status, 200);
});

test('fault noContentLength: chunked, or close-delimited', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(30000, 7);
  const f = srv.addFile('org/m', 'a.bin', data);
  srv.fault(f.cdnPath, { noContentLength: true, times: 2 });
  let r = await request(f.cdnUrl);
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.ok(r.body.equals(data));
  r = await request(f.cdnUrl, { headers: { Range: 'bytes=10-' } });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-length'], undefined);
  assert.ok(r.body.equals(data.subarray(10)));

  srv.fault(f.cdnPath, { noContentLength: 'close', times: 1 });
  r = await request(f.cdnUrl);
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.equal(r.headers.connection, 'close');
  assert.ok(r.body.equals(data));

  // Combined with a drop, a close-delimited body is silently short.
  srv.fault(f.cdnPath, { noContentLength: 'close', dropAfter: 999, times: 1 });
  r = await request(f.cdnUrl);
  assert.equal(r.body.length, 999);
});

test('fault ignoreRange, wrongBytes, headFails, delay, hangUp, headers', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(5000, 8);
  const f = srv.addFile('org/m', 'a.bin', data);

  srv.fault(f.cdnPath, { ignoreRange: true, times: 1 });
  let r = await request(f.cdnUrl, { headers: { Range: 'bytes=100-' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['accept-ranges'], undefined);
  assert.equal(r.headers['content-range'], undefined);
  assert.ok(r.body.equals(data));

  srv.fault(f.cdnPath, { wrongBytes: true, times: 1 });
  r = await request(f.cdnUrl);
  assert.equal(r.body.length, data.length);
  assert.equal(r.headers.etag, `"${f.sha256}"`);
  for (let i = 0; i < data.length; i++) assert.equal(r.body[i], data[i] ^ 0xff);

  srv.fault(f.cdnPath, { wrongBytes: { offset: 100, length: 2 }, times: 1 });
  r = await request(f.cdnUrl, { headers: { Range: 'bytes=50-' } });
  const diff = [];
  for (let i = 0; i < r.body.length; i++) if (r.body[i] !== data[50 + i]) diff.push(50 + i);
  assert.deepEqual(diff, [100, 101]);

  srv.fault(f.cdnPath, { headFails: true });
  assert.equal((await request(f.cdnUrl, { method: 'HEAD' })).status, 405);
  assert.ok((await request(f.cdnUrl)).body.equals(data));
  srv.clearFaults();
  srv.fault(f.path, { headFails: 500, times: 1 });
  assert.equal((await request(f.url, { method: 'HEAD' })).status, 500);
  assert.equal((await request(f.url, { method: 'HEAD' })).status, 302);

  srv.fault(f.path, { delay: 200, times: 1 });
  const t0 = Date.now();
  assert.equal((await fetch(f.url, { redirect: 'manual' })).status, 302);
  assert.ok(Date.now() - t0 >= 180);

  srv.fault(f.path, { hangUp: true, times: 1 });
  await assert.rejects(fetch(f.url));
  const hr = await request(f.url);
  assert.equal(hr.status, 302);

  srv.fault(f.path, { headers: { 'X-Linked-Etag': null, 'X-Linked-Size': '1' }, times: 1 });
  r = await request(f.url, { method: 'HEAD' });
  assert.equal(r.headers['x-linked-etag'], undefined);
  assert.equal(r.headers['x-linked-size'], '1');
  assert.throws(() => srv.fault(f.path, { bogus: 1 }), /unknown fault key/);
});

test('fault changeEtag: new ETag/Last-Modified/bytes on the CDN, and on the resolve redirect', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(4000, 9);
  const f = srv.addFile('org/m', 'a.bin', data);
  const orig = await request(f.cdnUrl);

  srv.fault(f.cdnPath, { changeEtag: true, times: 1 });
  const r = await request(f.cdnUrl, { headers: { Range: 'bytes=2000-', 'If-Range': `"${f.sha256}"` } });
  assert.equal(r.status, 200); // If-Range no longer matches: full body
  assert.notEqual(r.headers.etag, orig.headers.etag);
  assert.equal(r.headers.etag, `"${sha256(r.body)}"`);
  assert.ok(Date.parse(r.headers['last-modified']) > Date.parse(orig.headers['last-modified']));
  assert.equal(r.body.length, data.length);
  assert.ok(!r.body.equals(data));
  assert.equal((await request(f.cdnUrl)).headers.etag, `"${f.sha256}"`); // one-shot

  srv.fault(f.path, { changeEtag: true, times: 1 });
  const m = await fetch(f.url, { redirect: 'manual' });
  const newSha = m.headers.get('x-linked-etag').replace(/"/g, '');
  assert.match(newSha, hex64);
  assert.notEqual(newSha, f.sha256);
  const body = Buffer.from(await (await fetch(m.headers.get('location'))).arrayBuffer());
  assert.equal(sha256(body), newSha);

  // Raw files change too.
  srv.addRawFile('/files/x.bin', data);
  srv.fault('/files/x.bin', { changeEtag: true, times: 1 });
  const x = await request(`${srv.url}/files/x.bin`);
  assert.equal(x.headers.etag, `"${sha256(x.body)}"`);
  assert.ok(!x.body.equals(data));
});

test('fault slow throttles the body', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(100000, 10);
  const f = srv.addFile('org/m', 'a.bin', data);
  srv.fault(f.cdnPath, { slow: 500000 }); // 100 kB at 500 kB/s: ~200 ms
  const t0 = Date.now();
  const r = await request(f.cdnUrl);
  const ms = Date.now() - t0;
  assert.ok(r.body.equals(data));
  assert.ok(ms >= 170 && ms < 2000, `took ${ms} ms`);
});

test('fault targets: RegExp, predicate, raw path; merged faults', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const a = srv.addFile('org/m', 'dir/a.bin', Buffer.from('aaaa'));
  const b = srv.addFile('org/m', 'dir/b.bin', Buffer.from('bbbb'));
  srv.fault(/\/resolve\/main\/dir\/a\.bin$/, { status: 500, times: 1 });
  assert.equal((await fetch(b.url)).status, 200);
  assert.equal((await fetch(a.url)).status, 500);
  const h = srv.fault((q) => q.headers['x-test'] === 'yes', { status: 418 });
  assert.equal((await fetch(a.url, { headers: { 'x-test': 'yes' } })).status, 418);
  assert.equal((await fetch(a.url)).status, 200);
  assert.equal(h.hits, 1);
  h.remove();
  // raw percent-encoded spelling of the target also matches
  srv.fault('/org/m/resolve/main/dir%2Fb.bin', { status: 502, times: 1 });
  assert.equal((await fetch(b.url)).status, 502);
  // merged: slow + drop on one request
  const big = srv.addFile('org/m', 'c.bin', bytes(20000));
  srv.fault(big.cdnPath, { slow: 1e6, times: 1 });
  srv.fault(big.cdnPath, { dropAfter: 5000, times: 1 });
  const r = await request(big.cdnUrl);
  assert.equal(r.body.length, 5000);
  assert.ok(r.error);
});

test('generated files: deterministic, digest matches streamed bytes, ranges agree, streaming is bounded', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const size = 5 * 1024 * 1024 + 123;
  const g = await srv.addGeneratedFile('org/big', 'model.gguf', size, { seed: 7 });
  assert.equal(g.size, size);
  assert.match(g.sha256, hex64);
  assert.equal(srv.sha256Of('org/big', 'model.gguf'), g.sha256);
  const full = Buffer.from(await (await fetch(g.url)).arrayBuffer());
  assert.equal(full.length, size);
  assert.equal(sha256(full), g.sha256);
  // not trivially repetitive: 1 MiB blocks differ
  assert.ok(!full.subarray(0, 1 << 20).equals(full.subarray(1 << 20, 2 << 20)));

  for (const [s, e] of [[(1 << 20) - 10, 3 * (1 << 20) + 5], [size - 7, size - 1], [0, 0], [4 << 20, size - 1]]) {
    const r = await request(g.cdnUrl, { headers: { Range: `bytes=${s}-${e}` } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(full.subarray(s, e + 1)), `range ${s}-${e}`);
  }
  const same = await srv.addGeneratedFile('org/big', 'copy.gguf', size, { seed: 7 });
  assert.equal(same.sha256, g.sha256);
  const other = await srv.addGeneratedFile('org/big', 'other.gguf', size, { seed: 8 });
  assert.notEqual(other.sha256, g.sha256);
  const raw = await srv.addRawGeneratedFile('/files/gen.bin', 1000, { seed: 7 });
  const rb = (await request(raw.url)).body;
  assert.equal(sha256(rb), raw.sha256);
  assert.ok(rb.equals(full.subarray(0, 1000)));
  assert.equal(srv.sha256Of('/files/gen.bin'), raw.sha256);

  // Backpressure: a client that does not read does not make the server buffer the file.
  const huge = await srv.addGeneratedFile('org/big', 'huge.gguf', 64 * 1024 * 1024, { seed: 1 });
  let clientReq;
  let clientRes;
  const pending = request(huge.cdnUrl, { onResponse: (res, req) => { clientRes = res; clientReq = req; res.pause(); } });
  while (!clientRes) await new Promise((r) => setImmediate(r));
  let last = -1;
  for (let stable = 0; stable < 5;) {
    await new Promise((r) => setTimeout(r, 20));
    const now = srv.statsFor(huge.cdnPath).bytesSent;
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  assert.ok(last < 24 * 1024 * 1024, `server pushed ${last} bytes into a paused client`);
  t.diagnostic(`paused client: server stopped after ${last} bytes`);
  clientReq.destroy();
  await pending;
});

test('generated file throughput (informative)', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const size = 64 * 1024 * 1024;
  let t0 = Date.now();
  const g = await srv.addGeneratedFile('org/big', 'm.gguf', size, { seed: 3 });
  const hashMs = Date.now() - t0;
  t0 = Date.now();
  const h = crypto.createHash('sha256');
  let n = 0;
  const r = await request(g.cdnUrl, { onResponse: (res) => res.on('data', (c) => { h.update(c); n += c.length; }) });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.equal(n, size);
  assert.equal(h.digest('hex'), g.sha256);
  t.diagnostic(`hash at add: ${hashMs} ms; served to a node:http client and hashed 64 MiB in ${ms} ms (${(64 / (ms / 1000)).toFixed(0)} MiB/s)`);
});

test('raw URL files, redirects and token-protected raw files', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const data = bytes(2048, 11);
  const h = srv.addRawFile('/files/model.gguf', data);
  assert.equal(h.url, `${srv.url}/files/model.gguf`);
  let r = await request(h.url);
  assert.equal(r.status, 200);
  assert.equal(r.headers.etag, `"${sha256(data)}"`);
  assert.ok(r.body.equals(data));
  r = await request(h.url, { headers: { Range: 'bytes=2000-' } });
  assert.equal(r.status, 206);
  assert.ok(r.body.equals(data.subarray(2000)));

  srv.addRawFile('/files/plain.bin', data, { etag: false, lastModified: false, acceptRanges: false, contentType: 'text/plain' });
  r = await request(`${srv.url}/files/plain.bin`, { headers: { Range: 'bytes=5-' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.etag, undefined);
  assert.equal(r.headers['last-modified'], undefined);
  assert.equal(r.headers['accept-ranges'], undefined);
  assert.equal(r.headers['content-type'], 'text/plain');

  srv.addRawFile('/files/custom.bin', data, { etag: '"v1"' });
  assert.equal((await request(`${srv.url}/files/custom.bin`)).headers.etag, '"v1"');

  srv.addRedirect('/releases/download/model.gguf', '/files/model.gguf');
  srv.addRedirect('/go', `${srv.cdnOrigin}/files/model.gguf`, { status: 301 });
  r = await fetch(`${srv.url}/releases/download/model.gguf`);
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data));
  const m = await fetch(`${srv.url}/go`, { redirect: 'manual' });
  assert.equal(m.status, 301);
  assert.ok(Buffer.from(await (await fetch(`${srv.url}/go`)).arrayBuffer()).equals(data));

  srv.addRawFile('/private/x.bin', data, { requireToken: true });
  srv.setToken('t');
  assert.equal((await request(`${srv.url}/private/x.bin`)).status, 401);
  assert.equal((await request(`${srv.url}/private/x.bin`, { headers: { Authorization: 'Bearer t' } })).status, 200);

  assert.ok(srv.removeRawFile('/files/custom.bin'));
  assert.equal((await request(`${srv.url}/files/custom.bin`)).status, 404);
  const f = srv.addFile('org/m', 'gone.bin', Buffer.from('x'));
  assert.ok(srv.removeFile('org/m', 'gone.bin'));
  assert.equal((await request(f.url)).headers['x-error-code'], 'EntryNotFound');
});

test('tree API lists files with LFS sha256 and sizes', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const a = srv.addFile('org/klein', 'split_files/vae/vae.safetensors', bytes(300));
  const b = srv.addFile('org/klein', 'model.gguf', bytes(200));
  srv.addFile('org/klein', 'README.md', Buffer.from('# hi'), { lfs: false });
  let r = await fetch(`${srv.url}/api/models/org/klein/tree/main`);
  assert.equal(r.status, 200);
  let list = await r.json();
  assert.deepEqual(list.map((e) => [e.type, e.path]), [
    ['file', 'README.md'], ['file', 'model.gguf'], ['directory', 'split_files'],
  ]);
  const mg = list.find((e) => e.path === 'model.gguf');
  assert.deepEqual(mg.lfs, { oid: b.sha256, size: 200, pointerSize: mg.lfs.pointerSize });
  assert.equal(mg.size, 200);
  assert.equal(list.find((e) => e.path === 'README.md').lfs, undefined);

  r = await fetch(`${srv.url}/api/models/org/klein/tree/main?recursive=true`);
  list = await r.json();
  assert.deepEqual(list.filter((e) => e.type === 'directory').map((e) => e.path), ['split_files', 'split_files/vae']);
  assert.equal(list.find((e) => e.path === a.file).lfs.oid, a.sha256);
  r = await fetch(`${srv.url}/api/models/org/klein/tree/main/split_files/vae`);
  assert.deepEqual((await r.json()).map((e) => e.path), [a.file]);
  assert.equal((await fetch(`${srv.url}/api/models/org/klein/tree/main/nope`)).status, 404);
  assert.equal((await fetch(`${srv.url}/api/models/org/none/tree/main`)).headers.get('x-error-code'), 'RepoNotFound');
});

test('stats and request log', async (t) => {
  const srv = await startHfServer();
  t.after(() => srv.close());
  const f = srv.addFile('org/m', 'a.bin', bytes(1000));
  await request(f.url, { method: 'HEAD' });
  await request(f.cdnUrl, { method: 'HEAD' });
  await request(f.cdnUrl, { headers: { Range: 'bytes=0-499', Authorization: 'Bearer x' } });
  await request(f.cdnUrl, { headers: { Range: 'bytes=500-' } });
  const s = srv.stats[f.cdnPath];
  assert.equal(s.requests, 3);
  assert.equal(s.head, 1);
  assert.equal(s.get, 2);
  assert.equal(s.bytesSent, 1000);
  assert.deepEqual(s.ranges, ['bytes=0-499', 'bytes=500-']);
  assert.deepEqual(s.authorization, ['Bearer x']);
  assert.deepEqual(s.statuses, [200, 206, 206]);
  assert.equal(s.maxConcurrent, 1);
  assert.deepEqual(srv.requests.map((q) => `${q.method} ${q.path}`), [
    `HEAD ${f.path}`, `HEAD ${f.cdnPath}`, `GET ${f.cdnPath}`, `GET ${f.cdnPath}`,
  ]);
  assert.ok(srv.requests[1].url.includes('X-Amz-Signature='));
  assert.equal(srv.requests[2].headers.range, 'bytes=0-499');

  // concurrent ranged requests are counted
  const big = await srv.addGeneratedFile('org/m', 'g.bin', 4 << 20, { seed: 2 });
  srv.fault(big.cdnPath, { slow: 8 << 20 });
  await Promise.all([0, 1, 2, 3].map((i) => request(big.cdnUrl, { headers: { Range: `bytes=${i << 20}-${((i + 1) << 20) - 1}` } })));
  assert.equal(srv.stats[big.cdnPath].maxConcurrent, 4);

  srv.resetStats();
  assert.deepEqual(srv.requests, []);
  assert.equal(srv.stats[f.cdnPath], undefined);
  assert.equal(srv.statsFor(f.cdnPath).get, 0);
});

test('close() destroys idle keep-alive and busy sockets and never hangs', async () => {
  const srv = await startHfServer({ crossHost: true });
  const f = srv.addFile('org/m', 'a.bin', bytes(100000));
  await (await fetch(f.url)).arrayBuffer(); // leaves keep-alive sockets in fetch's pool
  srv.fault(f.cdnPath, { stall: true, stallAfter: 10 });
  srv.fault(f.path, { delay: 60000 });
  const stalled = request(f.cdnUrl);
  const delayed = request(f.url);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  await srv.close();
  assert.ok(Date.now() - t0 < 1000);
  assert.ok((await stalled).error);
  assert.ok((await delayed).error);
  await assert.rejects(fetch(f.url));
  await srv.close(); // idempotent
});
