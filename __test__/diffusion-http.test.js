'use strict';
/**
 * The HTTP API end to end (127.0.0.1 only): the contract's routes, JSON and status codes, progress
 * while polling, count batches, bad input, the queue, cancellation while queued and while running,
 * result TTL, and crash recovery (a crashing sd-server, a wrong-width text encoder).
 */
const { test, describe, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { once } = require('node:events');
const g = require('..');
const h = require('./helpers/diffusion.js');

let env;
const server = new g.DiffusionServerManager();
let port;

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 24);
  process.env.FAKE_SD_STEP_MS = '2';
  h.kleinRecord(env.root);
  h.kleinRecord(env.root, { id: 'klein-8b-encoder', llm: '8b' });
});

after(async () => {
  await server.stop();
});

afterEach(async () => {
  await server.stop();
  for (const k of Object.keys(process.env)) {
    if (k.startsWith('FAKE_SD_') && k !== 'FAKE_SD_STEP_MS' && k !== 'FAKE_SD_HEADER_ONLY' && k !== 'FAKE_SD_LOG_ARGS') delete process.env[k];
  }
  process.env.FAKE_SD_STEP_MS = '2';
  delete process.env.IMAGE_RESULT_TTL_MS;
  delete process.env.IMAGE_CLEANUP_INTERVAL_MS;
});

async function start(extra = {}) {
  const info = await server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath, ...extra });
  port = info.port;
  return info;
}

const post = (body, q = '') => h.http(port, 'POST', `/v1/images/generations${q}`, body);

describe('routes and JSON', () => {
  test('health, no CORS by default, POST -> poll -> PNG result', async () => {
    await start();
    const health = await h.http(port, 'GET', '/health');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok', busy: false, backend: 'absent' });
    // No CORS unless allowedOrigins says so (genai-electron 0.26); see diffusion-residency tests.
    assert.equal(health.headers.get('access-control-allow-origin'), null);
    assert.equal(health.headers.get('vary'), 'Origin');
    assert.match(health.headers.get('content-type'), /application\/json/);

    const before = Date.now();
    const created = await post({ prompt: 'a lighthouse', width: 64, height: 64, steps: 3, seed: 77 });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.json), ['id', 'status', 'createdAt']);
    assert.match(created.json.id, /^gen_\d+_[0-9a-z]{9}$/);
    assert.equal(created.json.status, 'pending');
    assert.ok(created.json.createdAt >= before - 1000);

    const seen = await h.pollUntil(port, created.json.id, h.terminal);
    const last = seen[seen.length - 1].json;
    assert.equal(last.status, 'complete', JSON.stringify(last).slice(0, 300));
    assert.deepEqual(Object.keys(last), ['id', 'status', 'createdAt', 'updatedAt', 'result']);
    assert.equal(last.result.format, 'png');
    assert.ok(last.result.timeTaken >= 0);
    assert.equal(last.result.images.length, 1);
    const img = last.result.images[0];
    assert.equal(img.seed, 77);
    assert.deepEqual(h.pngSize(Buffer.from(img.image, 'base64')), { width: 64, height: 64 });
    assert.equal(img.width, 64);
    assert.equal(img.height, 64);
  });

  test('progress while polling is monotonic and 100 only when complete', async () => {
    process.env.FAKE_SD_STEP_MS = '25';
    await start();
    const created = await post({ prompt: 'slow', steps: 12 });
    const seen = await h.pollUntil(port, created.json.id, h.terminal, { intervalMs: 5 });
    const progress = seen.filter((r) => r.json.status === 'in_progress' && r.json.progress).map((r) => r.json.progress);
    assert.ok(progress.length >= 3, `saw ${progress.length} progress states`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].percentage >= progress[i - 1].percentage);
    assert.ok(progress.every((p) => p.percentage < 100));
    assert.ok(progress.some((p) => p.stage === 'diffusion' && p.totalSteps === 12));
    assert.equal(progress[0].currentImage, undefined, 'image counters only for batches');
    assert.equal(seen[seen.length - 1].json.status, 'complete');
  });

  test('progress while polling a replayed real sd-server run never goes down', async () => {
    h.replayRealRun();
    await start();
    const created = await post({ prompt: 'replayed', width: 64, height: 64 });
    const seen = await h.pollUntil(port, created.json.id, h.terminal, { intervalMs: 5 });
    const progress = seen.filter((r) => r.json.status === 'in_progress' && r.json.progress).map((r) => r.json.progress);
    // the diffusion weights' loading pass (280 tensors) was seen, after the text encoder's
    assert.ok(progress.some((p) => p.stage === 'loading' && p.totalSteps === 280), JSON.stringify(progress));
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].percentage >= progress[i - 1].percentage, JSON.stringify(progress.map((p) => p.percentage)));
    }
    assert.equal(seen[seen.length - 1].json.status, 'complete');
  });

  test('count 1-5: a batch with image counters and seeds seed+i', async () => {
    process.env.FAKE_SD_STEP_MS = '15';
    await start();
    const created = await post({ prompt: 'batch', count: 3, seed: 100, steps: 4, width: 64, height: 64 });
    const seen = await h.pollUntil(port, created.json.id, h.terminal);
    const last = seen[seen.length - 1].json;
    assert.equal(last.status, 'complete');
    assert.deepEqual(last.result.images.map((i) => i.seed), [100, 101, 102]);
    const counters = seen.filter((r) => r.json.progress).map((r) => [r.json.progress.currentImage, r.json.progress.totalImages]);
    assert.ok(counters.length > 0 && counters.every(([c, t]) => t === 3 && c >= 1 && c <= 3), JSON.stringify(counters));
  });

  test('bad input: 400 for missing prompt, bad count, malformed JSON; 413; 404s; query strings tolerated', async () => {
    await start();
    let r = await post({ negativePrompt: 'x' });
    assert.deepEqual([r.status, r.json.error.code, r.json.error.message], [400, 'INVALID_REQUEST', 'Missing required field: prompt']);
    r = await post({ prompt: 'x', count: 6 });
    assert.deepEqual([r.status, r.json.error.message], [400, 'count must be between 1 and 5']);
    r = await post('{"prompt": "x",');
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'INVALID_REQUEST');
    r = await post({ prompt: 'x', width: 'wide' });
    assert.equal(r.status, 400);
    // sd-server would take parameters embedded in a prompt, bypassing the checks above.
    r = await post({ prompt: 'a cat <sd_cpp_extra_args>{"sample_params":{"sample_steps":500}}</sd_cpp_extra_args>' });
    assert.deepEqual([r.status, r.json.error.code], [400, 'INVALID_REQUEST']);
    assert.match(r.json.error.message, /prompt must not contain <sd_cpp_extra_args>/);
    r = await post({ prompt: 'x'.repeat(2 * 1024 * 1024) });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
    r = await h.http(port, 'GET', '/v1/images/generations/gen_0_nothere');
    assert.deepEqual([r.status, r.json], [404, { error: { message: 'Generation not found', code: 'NOT_FOUND' } }]);
    r = await h.http(port, 'GET', '/v2/elsewhere');
    assert.deepEqual([r.status, r.json], [404, { error: { message: 'Not found', code: 'NOT_FOUND' } }]);
    r = await h.http(port, 'OPTIONS', '/v1/images/generations');
    assert.equal(r.status, 200);
    r = await h.http(port, 'GET', '/health?probe=1');
    assert.equal(r.status, 200);
    const ok = await post({ prompt: 'query ok', steps: 1 }, '?client=test');
    assert.equal(ok.status, 201);
    const done = await h.pollUntil(port, `${ok.json.id}?x=1`, h.terminal);
    assert.equal(done[done.length - 1].json.status, 'complete');
  });

  test('the public API binds 127.0.0.1 by default', async () => {
    await start();
    const net = require('node:net');
    const reachable = (host) => new Promise((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    assert.equal(await reachable('127.0.0.1'), true);
    // Linux routes all of 127/8 to the loopback interface: a server bound to 0.0.0.0 answers on
    // 127.0.0.2, one bound to 127.0.0.1 does not. (Other systems have only 127.0.0.1 up.)
    if (process.platform === 'linux') assert.equal(await reachable('127.0.0.2'), false, 'reachable on 127.0.0.2');
  });
});

describe('queue and cancellation', () => {
  test('jobs queue behind a running one; 503 only when the queue is full', async () => {
    process.env.FAKE_SD_STEP_MS = '40';
    await start({ maxQueueSize: 1 });
    const a = await post({ prompt: 'a', steps: 10 });
    const b = await post({ prompt: 'b', steps: 1 });
    assert.equal(a.status, 201);
    assert.equal(b.status, 201, 'queued, not 503');
    assert.equal((await h.http(port, 'GET', '/health')).json.busy, true);
    const c = await post({ prompt: 'c', steps: 1 });
    assert.equal(c.status, 503);
    assert.equal(c.json.error.code, 'SERVER_BUSY');
    const [doneA, doneB] = await Promise.all([
      h.pollUntil(port, a.json.id, h.terminal),
      h.pollUntil(port, b.json.id, h.terminal),
    ]);
    assert.equal(doneA.at(-1).json.status, 'complete');
    assert.equal(doneB.at(-1).json.status, 'complete');
  });

  test('cancel while queued: 200, never runs; DELETE 404 / 409 / repeat', async () => {
    process.env.FAKE_SD_STEP_MS = '30';
    await start();
    const a = await post({ prompt: 'a', steps: 8 });
    const b = await post({ prompt: 'b', steps: 1 });
    const del = await h.http(port, 'DELETE', `/v1/images/generations/${b.json.id}`);
    assert.deepEqual([del.status, del.json], [200, { id: b.json.id, status: 'cancelled' }]);
    const again = await h.http(port, 'DELETE', `/v1/images/generations/${b.json.id}`);
    assert.equal(again.status, 200);
    const state = await h.http(port, 'GET', `/v1/images/generations/${b.json.id}`);
    assert.deepEqual(Object.keys(state.json), ['id', 'status', 'createdAt', 'updatedAt']);
    assert.equal(state.json.status, 'cancelled');
    const doneA = await h.pollUntil(port, a.json.id, h.terminal);
    assert.equal(doneA.at(-1).json.status, 'complete');
    const conflict = await h.http(port, 'DELETE', `/v1/images/generations/${a.json.id}`);
    assert.deepEqual([conflict.status, conflict.json.error.code], [409, 'ALREADY_TERMINAL']);
    assert.equal(conflict.json.error.message, 'Generation is already complete and cannot be cancelled');
    assert.equal((await h.http(port, 'DELETE', '/v1/images/generations/gen_1_missing')).status, 404);
  });

  test('cancel while running: sd-server is replaced, the queue survives', async () => {
    process.env.FAKE_SD_STEP_MS = '100';
    const info = await start();
    const a = await post({ prompt: 'long', steps: 100 });
    process.env.FAKE_SD_STEP_MS = '2'; // the replacement sd-server is fast
    const b = await post({ prompt: 'next', steps: 2 });
    await h.pollUntil(port, a.json.id, (r) => r.json.status === 'in_progress');
    const statuses = [];
    server.on('status', (s) => statuses.push(s));
    await server.cancelImageGeneration(a.json.id);
    const doneB = await h.pollUntil(port, b.json.id, h.terminal);
    assert.equal(doneB.at(-1).json.status, 'complete');
    assert.equal((await h.http(port, 'GET', `/v1/images/generations/${a.json.id}`)).json.status, 'cancelled');
    assert.equal(h.processAlive(info.pid), false, 'the old sd-server is gone');
    assert.ok(server.getPid() && server.getPid() !== info.pid);
    assert.deepEqual(statuses, [], 'an intended restart is not a crash');
    await server.cancelImageGeneration(a.json.id); // terminal: silent no-op
    await assert.rejects(server.cancelImageGeneration('gen_0_unknown'), (e) => e instanceof g.ServerError && e.details.code === 'GENERATION_NOT_FOUND');
  });

  test('cli backend: cancel while running kills sd-cli', async () => {
    process.env.FAKE_SD_STEP_MS = '100';
    await start({ backend: 'cli' });
    const p = server.generateImage({ prompt: 'long', steps: 100 });
    const rejected = assert.rejects(p, /Image generation cancelled/);
    while (!server.getActiveGenerationId()) await new Promise((r) => setImmediate(r));
    const id = server.getActiveGenerationId();
    // Wait until sd-cli is actually running.
    while (h.processesMatching(env.root).length === 0) await new Promise((r) => setImmediate(r));
    await server.cancelImageGeneration(id);
    await rejected;
    const deadline = Date.now() + 10000;
    while (h.processesMatching(env.root).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(h.processesMatching(env.root), []);
  });

  test('results expire after IMAGE_RESULT_TTL_MS', async () => {
    process.env.IMAGE_RESULT_TTL_MS = '150';
    process.env.IMAGE_CLEANUP_INTERVAL_MS = '50';
    await start();
    const a = await post({ prompt: 'short-lived', steps: 1 });
    const seen = await h.pollUntil(port, a.json.id, (r) => r.status === 404, { intervalMs: 20, timeoutMs: 5000 });
    assert.ok(seen.some((r) => r.status === 200 && r.json.status === 'complete'), 'it completed first');
  });
});

describe('crash recovery', () => {
  test('sd-server crashing mid-image: backend-status crashed, SD_SERVER_EXITED, server keeps running, the next image respawns', async () => {
    process.env.FAKE_SD_CRASH_AT_STEP = '2';
    process.env.FAKE_SD_CRASH_SIGNAL = 'SIGSEGV';
    process.env.FAKE_SD_CRASH_MESSAGE = 'fake: simulated segfault';
    await start();
    const crashed = once(server, 'crashed');
    const backend = [];
    server.on('backend-status', (e) => backend.push(e));
    const statuses = [];
    server.on('status', (s, old) => statuses.push(`${old}->${s}`));
    await assert.rejects(server.generateImage({ prompt: 'doomed', steps: 5 }), (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.match(e.message, /sd-server\) exited with signal 11 \(SIGSEGV\) during generation/);
      assert.match(e.message, /fake: simulated segfault/);
      assert.equal(e.details.code, 'SD_SERVER_EXITED');
      assert.equal(e.details.exitCode, 139);
      assert.equal(e.details.signal, 'SIGSEGV');
      assert.match(e.details.stderr, /simulated segfault/);
      assert.ok(e.details.args.some((a) => a.endsWith('sd-server')));
      return true;
    });
    delete process.env.FAKE_SD_CRASH_AT_STEP; // the respawned sd-server behaves
    const [c] = await crashed;
    assert.equal(c.exitCode, 139);
    assert.equal(c.code, null);
    assert.equal(c.signal, 'SIGSEGV');
    assert.match(c.stderr, /simulated segfault/);
    assert.deepEqual(backend.map((e) => `${e.previous}->${e.state}:${e.reason}`), [
      'absent->starting:spawned',
      'starting->ready:ready',
      'ready->busy:job',
      'busy->absent:crashed',
    ]);
    assert.deepEqual(backend.at(-1).exit, { code: null, signal: 'SIGSEGV' });
    assert.equal(server.hasCrashed(), false);
    assert.equal(server.getInfo().health, 'ok');
    assert.equal(server.getBackendInfo().state, 'absent');

    const r = await server.generateImage({ prompt: 'recovered', steps: 2 });
    assert.ok(h.pngSize(r.image));
    assert.equal(server.isRunning(), true);
    assert.deepEqual(statuses, [], 'the server itself never left running');
    assert.equal(server.getBackendInfo().state, 'ready');
  });

  test('HTTP job during a crash ends in error with BACKEND_ERROR', async () => {
    process.env.FAKE_SD_CRASH_AT_STEP = '1';
    process.env.FAKE_SD_CRASH_SIGNAL = 'SIGABRT';
    await start();
    const a = await post({ prompt: 'x', steps: 3 });
    const seen = await h.pollUntil(port, a.json.id, h.terminal);
    delete process.env.FAKE_SD_CRASH_AT_STEP;
    const last = seen.at(-1).json;
    assert.equal(last.status, 'error');
    assert.equal(last.error.code, 'BACKEND_ERROR', 'SD_SERVER_EXITED on the wire, as genai-electron maps it');
    assert.match(last.error.message, /exited with signal 6 \(SIGABRT\)/);
    const b = await post({ prompt: 'y', steps: 1 });
    assert.equal(b.status, 201, 'accepted after the crash');
    assert.equal((await h.pollUntil(port, b.json.id, h.terminal)).at(-1).json.status, 'complete');
  });

  test('a text encoder of the wrong width (Qwen3-8B given to Klein 4B) is refused before spawning, naming both files', async () => {
    await assert.rejects(start({ modelId: 'klein-8b-encoder' }), (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.match(e.message, /Incompatible components: .*flux-2-klein-4b-Q8_0\.gguf and .*Qwen3-8B-Q8_0\.gguf: the llm text encoder \(36 layers x 4096 wide\) produces a 12288-wide text context, but the diffusion model expects 7680/);
      assert.match(e.message, /Klein 4B needs Qwen3-4B/);
      assert.equal(e.details.code, 'INCOMPATIBLE_COMPONENTS');
      assert.deepEqual(e.details.roles, ['diffusion_model', 'llm']);
      return true;
    });
    assert.equal(server.getStatus(), 'stopped');
    assert.deepEqual(h.processesMatching(env.root), []);
  });

  test('a respawn that fails to load: the image says why (start-failed), the server keeps running, a later spawn recovers', async () => {
    process.env.FAKE_SD_CRASH_AT_STEP = '1';
    await start();
    await assert.rejects(server.generateImage({ prompt: 'crash', steps: 2 }), /during generation/);
    delete process.env.FAKE_SD_CRASH_AT_STEP;
    process.env.FAKE_SD_FAIL_LOAD = '1';
    const backend = [];
    server.on('backend-status', (e) => backend.push(`${e.state}:${e.reason}`));
    await assert.rejects(server.generateImage({ prompt: 'no server', steps: 2 }), (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.equal(e.details.code, 'MODEL_LOAD_FAILED');
      assert.match(e.message, /get sd version from file failed/);
      return true;
    });
    assert.deepEqual(backend, ['starting:spawned', 'absent:start-failed']);
    assert.equal(server.getStatus(), 'running');
    delete process.env.FAKE_SD_FAIL_LOAD;
    const r = await server.generateImage({ prompt: 'fixed', steps: 1 });
    assert.ok(h.pngSize(r.image));
    assert.equal(server.getStatus(), 'running');
  });

  test('a generation sd-server reports as failed: error with sd.cpp\'s words, same process serves the next', async () => {
    process.env.FAKE_SD_FAIL_JOBS = '1,2';
    await start();
    const a = await post({ prompt: 'fails', steps: 2 });
    const last = (await h.pollUntil(port, a.json.id, h.terminal)).at(-1).json;
    assert.equal(last.status, 'error');
    assert.equal(last.error.code, 'BACKEND_ERROR');
    assert.match(last.error.message, /^stable-diffusion\.cpp failed to generate the image: /);
    const pid = server.getPid();
    assert.ok(pid > 0);
    await assert.rejects(server.generateImage({ prompt: 'fails too', steps: 1 }), (e) => e.details.code === 'BACKEND_JOB_FAILED' && typeof e.details.jobId === 'string');
    const b = await post({ prompt: 'works', steps: 1 });
    assert.equal((await h.pollUntil(port, b.json.id, h.terminal)).at(-1).json.status, 'complete');
    assert.equal(server.getPid(), pid, 'no restart needed');
    assert.equal(server.getStatus(), 'running');
  });

  test('sd-cli failing: the job fails with the exit code, stderr and args', async () => {
    process.env.FAKE_SD_CRASH_AT_STEP = '1';
    process.env.FAKE_SD_CRASH_SIGNAL = 'SIGABRT';
    process.env.FAKE_SD_CRASH_MESSAGE = 'ggml.c:3286: GGML_ASSERT(ggml_can_mul_mat(a, b)) failed';
    await start({ backend: 'cli' });
    await assert.rejects(server.generateImage({ prompt: 'x', steps: 2 }), (e) => {
      assert.match(e.message, /exited with signal 6 \(SIGABRT\)/);
      assert.match(e.message, /GGML_ASSERT/);
      assert.match(e.message, /\nArgs: --diffusion-model /);
      return true;
    });
    assert.equal(server.isRunning(), true, 'one failed sd-cli run is not a server crash');
  });
});
