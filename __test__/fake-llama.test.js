'use strict';
/**
 * The fake llama-server against the real captures in fixtures/fake-llama/captures/ (build
 * 9874): argument errors byte for byte, --version, the startup and failure log lines, /health
 * 503 then 200, response shapes, and the signal behaviour. The supervisor tests are only as good
 * as this fake.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { once } = require('node:events');
const h = require('./helpers/llama.js');

const BIN = path.join(h.FAKE_LLAMA_DIR, 'llama-server');
const CAPTURES = path.join(h.FAKE_LLAMA_DIR, 'captures');
const capture = (name) => fs.readFileSync(path.join(CAPTURES, name), 'utf8');
const body = (http) => http.slice(http.indexOf('\r\n\r\n') >= 0 ? http.indexOf('\r\n\r\n') + 4 : http.indexOf('\n\n') + 2);
const noStamp = (text) => text.split('\n').filter(Boolean).map((l) => l.replace(/^\d+\.\d{2}\.\d{3}\.\d{3} /, ''));

const root = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'fake-llama-'));
const model = path.join(root, 'tiny.gguf');
fs.writeFileSync(model, h.tinyGguf({ ctx: 256 }));

function run(args, env = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}

/** Spawns the fake and resolves once `listening on` is printed. */
async function serve(extraArgs = [], env = {}) {
  const port = await freePort();
  const child = spawn(BIN, ['-m', model, '--port', String(port), ...extraArgs], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  while (!err.includes('listening on')) await once(child.stderr, 'data');
  return { child, port, stderr: () => err };
}

test('argument errors are the real messages, byte for byte, exit 1', () => {
  const cases = [
    [['--bogus-flag'], 'unknownflag.err'],
    [['-c', 'abc'], 'badnum.err'],
    [['-c'], 'novalue.err'],
    [['-fa', 'maybe'], 'badfa.err'],
    [['--cache-type-k', 'q9_9'], 'badcachetype.err'],
  ];
  for (const [args, file] of cases) {
    const r = run(['-m', model, ...args]);
    assert.equal(r.code, 1, file);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, capture(file), file);
  }
  // stoi reads a leading number and ignores the rest, as std::stoi does.
  const v = run(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stderr, capture('version.err'));
});

test('startup lines, /health 503 while loading then 200, and the endpoints', async () => {
  const port = await freePort();
  const child = spawn(BIN, ['-m', model, '--host', '127.0.0.1', '--port', String(port)], { env: { ...process.env, FAKE_LLAMA_LOAD_MS: '400' } });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  let sawLoading = false;
  for (;;) {
    try {
      const r = await h.request(port, 'GET', '/health');
      if (r.status === 503) {
        sawLoading = true;
        assert.equal(r.body, body(capture('loading_health.http')));
        assert.equal((await h.request(port, 'POST', '/completion', { prompt: 'x' })).status, 503);
      } else {
        assert.equal(r.status, 200);
        assert.equal(r.body, body(capture('health_ok.http')));
        break;
      }
    } catch {
      // not bound yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(sawLoading);
  while (!err.includes('listening on')) await once(child.stderr, 'data');
  const want = noStamp(capture('start.err')).slice(0, 5).map((l) => l.replace('/models/tiny.gguf', model).replace('18080', String(port)));
  assert.deepEqual(noStamp(err), want);
  assert.match(err.split('\n')[0], /^0\.00\.\d{3}\.\d{3} I /);

  const nf = await h.request(port, 'GET', '/nope');
  assert.equal(nf.status, 404);
  assert.equal(nf.body, body(capture('notfound.http')));
  const keys = (o) => Object.keys(o).sort();
  const chat = JSON.parse((await h.request(port, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 })).body);
  assert.deepEqual(keys(chat), keys(JSON.parse(body(capture('chat.http')))));
  const comp = JSON.parse((await h.request(port, 'POST', '/completion', { prompt: 'Hello world', n_predict: 8 })).body);
  for (const k of ['content', 'stop', 'model', 'tokens_predicted', 'stop_type', 'timings']) assert.ok(k in comp, k);
  assert.equal(comp.tokens_predicted, 8);
  const stream = await h.request(port, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true });
  assert.equal(stream.headers['content-type'], 'text/event-stream');
  assert.equal(stream.headers['transfer-encoding'], 'chunked');
  const events = stream.body.split('\n\n').filter(Boolean);
  assert.deepEqual(JSON.parse(events[0].slice(6)).choices[0].delta, { role: 'assistant', content: null });
  assert.equal(events.at(-1), 'data: [DONE]');
  assert.equal(JSON.parse(events.at(-2).slice(6)).choices[0].finish_reason, 'length');
  const cs = await h.request(port, 'POST', '/completion', { prompt: 'x', n_predict: 3, stream: true });
  const cev = cs.body.split('\n\n').filter(Boolean);
  assert.ok(!cs.body.includes('[DONE]'), 'no [DONE] on /completion');
  assert.equal(JSON.parse(cev.at(-1).slice(6)).stop, true);
  const props = JSON.parse((await h.request(port, 'GET', '/props')).body);
  assert.equal(props.default_generation_settings.n_ctx, 256);
  assert.equal(props.total_slots, 4);
  child.kill('SIGTERM');
  const [code, signal] = await once(child, 'exit');
  assert.deepEqual([code, signal], [0, null]);
  assert.match(err, /operator\(\): operator\(\): cleaning up before exit\.\.\.\n$/);
});

test('load failures print the real lines and exit 1; the port is bound before loading', async () => {
  const missing = run(['-m', '/models/missing.gguf', '--port', String(await freePort())]);
  assert.equal(missing.code, 1);
  assert.deepEqual(noStamp(missing.stderr), noStamp(capture('missing.err')));
  const notGguf = path.join(root, 'notgguf.gguf');
  fs.writeFileSync(notGguf, 'this is a text file\n');
  const ng = run(['-m', notGguf, '--port', String(await freePort())]);
  assert.equal(ng.code, 1);
  assert.deepEqual(noStamp(ng.stderr), noStamp(capture('notgguf.err')).map((l) => l.replace('/models/notgguf.gguf', notGguf)));
  const holder = net.createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  const busyPort = holder.address().port;
  const busy = run(['-m', model, '--port', String(busyPort)]);
  holder.close();
  assert.equal(busy.code, 1);
  assert.deepEqual(noStamp(busy.stderr), noStamp(capture('portinuse.err')).map((l) => l.replace('18091', String(busyPort))));
});

test('signals: none handled while loading; a stream holds SIGTERM until the SSE ping; a second one exits 1', async () => {
  const port = await freePort();
  const loading = spawn(BIN, ['-m', model, '--port', String(port)], { env: { ...process.env, FAKE_LLAMA_MODE: 'hang-loading' } });
  let lerr = '';
  loading.stderr.on('data', (d) => {
    lerr += d;
  });
  while (!lerr.includes('loading model')) await once(loading.stderr, 'data');
  loading.kill('SIGTERM');
  assert.deepEqual(await once(loading, 'exit'), [null, 'SIGTERM']);

  const s = await serve(['--sse-ping-interval', '1'], { FAKE_LLAMA_TOKEN_MS: '30' });
  const req = require('node:http').request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/completion' });
  const got = [];
  req.on('response', (res) => res.on('data', (c) => got.push(String(c))).on('error', () => {}));
  req.on('error', () => {});
  req.end(JSON.stringify({ prompt: 'x', n_predict: 1000, stream: true }));
  while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
  const t0 = Date.now();
  s.child.kill('SIGTERM');
  const [code] = await once(s.child, 'exit');
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 >= 900, 'held until the ping');
  assert.match(s.stderr(), /W srv {10}stop: cancel task/);

  const s2 = await serve([], { FAKE_LLAMA_TOKEN_MS: '30' });
  const req2 = require('node:http').request({ host: '127.0.0.1', port: s2.port, method: 'POST', path: '/completion' });
  const got2 = [];
  req2.on('response', (res) => res.on('data', (c) => got2.push(String(c))).on('error', () => {}));
  req2.on('error', () => {});
  req2.end(JSON.stringify({ prompt: 'x', n_predict: 1000, stream: true }));
  while (got2.length < 3) await new Promise((r) => setTimeout(r, 10));
  s2.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  s2.child.kill('SIGTERM');
  const [code2] = await once(s2.child, 'exit');
  assert.equal(code2, 1);
  assert.equal(noStamp(s2.stderr()).at(-1), noStamp(capture('sig2.err')).at(-1));
});
