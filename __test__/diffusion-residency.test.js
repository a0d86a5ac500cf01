'use strict';
/**
 * sd-server residency as genai-electron 0.26 has it, against the fake sd-server: lazy spawn on the
 * first image, usageMode burst/single/auto per server and per request, the idle release and its
 * timer, releaseBackend reasons and ranks, the backend-status sequences, the orchestrator hooks,
 * executeImage/BatchGeneration, the HTTP Origin/Host guards and CORS, and calibrate().
 */
const { test, describe, before, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const g = require('..');
const h = require('./helpers/diffusion.js');
const { pickRecommended } = require('../lib/diffusion-server.js');

let env;
let server;
let events;

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 24);
  process.env.FAKE_SD_STEP_MS = '1';
  h.kleinRecord(env.root);
  h.kleinRecord(env.root, { id: 'sd3.5-large-test' });
});

beforeEach(() => {
  server = new g.DiffusionServerManager();
  events = [];
  server.on('backend-status', (e) => events.push(`${e.state}:${e.reason}`));
});

afterEach(async () => {
  await server.stop();
  for (const k of Object.keys(process.env)) {
    if (k.startsWith('FAKE_SD_') && k !== 'FAKE_SD_STEP_MS' && k !== 'FAKE_SD_HEADER_ONLY') delete process.env[k];
  }
  process.env.FAKE_SD_STEP_MS = '1';
  assert.deepEqual(h.processesMatching(env.root), [], 'no sd.cpp process left behind');
});

const start = (extra = {}) => server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath, ...extra });
const image = (extra = {}) => server.generateImage({ prompt: 'a lighthouse', steps: 1, width: 64, height: 64, ...extra });

/** The next `backend-status` event matching `pred`. */
const nextStatus = (pred) => h.nextEvent(server, 'backend-status', pred);

/** A raw request, so Host and Origin can be anything. */
function raw(port, method, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, setHost: !('Host' in headers) }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const SPAWN = ['starting:spawned', 'ready:ready'];
const JOB = ['busy:job', 'ready:job'];

describe('lazy spawn and usageMode', () => {
  test('start() spawns nothing; the first image spawns; burst keeps sd-server warm (default)', async () => {
    const log = h.argsLog(env.tmp);
    const info = await start();
    assert.deepEqual(info.backend, { state: 'absent' });
    assert.deepEqual(server.getBackendInfo(), { state: 'absent' });
    assert.equal(log.all().length, 0);
    const r = await image();
    assert.ok(h.pngSize(r.image));
    const b = server.getBackendInfo();
    assert.equal(b.state, 'ready');
    assert.ok(h.processAlive(b.pid) && b.pid === server.getPid());
    assert.ok(!Number.isNaN(Date.parse(b.startedAt)) && !Number.isNaN(Date.parse(b.lastUsedAt)));
    assert.ok(b.loadTimeMs >= 0);
    assert.deepEqual(Object.keys(b.flags).sort(), ['clipOnCpu', 'diffusionFlashAttention', 'offloadToCpu', 'vaeOnCpu']);
    assert.deepEqual(server.getInfo().backend, b);
    await image();
    assert.equal(log.all().length, 1, 'one sd-server for both images');
    assert.deepEqual(events, [...SPAWN, ...JOB, ...JOB]);
    assert.equal((await h.http(server.getPort(), 'GET', '/health')).json.backend, 'ready');
  });

  test('single releases sd-server after every image, before generateImage resolves', async () => {
    const log = h.argsLog(env.tmp);
    await start({ usageMode: 'single' });
    await image();
    assert.equal(server.getBackendInfo().state, 'absent');
    assert.equal(server.getPid(), undefined);
    await image();
    assert.equal(log.all().length, 2);
    assert.deepEqual(events, [...SPAWN, ...JOB, 'stopping:single', 'absent:single', ...SPAWN, ...JOB, 'stopping:single', 'absent:single']);
  });

  test('per request: usageMode single on a burst server, burst on a single server; auto is burst without an LLM', async () => {
    await start({ usageMode: 'auto' });
    await image({ usageMode: 'single' });
    assert.equal(server.getBackendInfo().state, 'absent');
    await image();
    assert.equal(server.getBackendInfo().state, 'ready', "'auto' resolves to burst with no LLM to make room for");
    await image({ usageMode: 'auto' }); // not a request mode: ignored, as 0.26 ignores it
    assert.equal(server.getBackendInfo().state, 'ready');
    await server.stop();
    await start({ usageMode: 'single' });
    await image({ usageMode: 'burst' });
    assert.equal(server.getBackendInfo().state, 'ready');
  });

  test('resolveUsageMode and settleResidency', async () => {
    await start();
    assert.equal(server.resolveUsageMode('single', false), 'single');
    assert.equal(server.resolveUsageMode(undefined, false), 'burst');
    assert.equal(server.resolveUsageMode(undefined, true), 'single');
    await server.stop();
    await start({ usageMode: 'single' });
    assert.equal(server.resolveUsageMode(undefined, false), 'single');
    assert.equal(server.resolveUsageMode('burst', true), 'burst');
    await server.executeImageGeneration({ prompt: 'x', steps: 1 });
    assert.equal(server.getBackendInfo().state, 'ready', 'execute* never settles');
    await server.settleResidency('single');
    assert.equal(server.getBackendInfo().state, 'absent');
  });

  test('HTTP: a bad usageMode is a 400; a valid one is honoured', async () => {
    await start();
    const port = server.getPort();
    const bad = await h.http(port, 'POST', '/v1/images/generations', { prompt: 'x', usageMode: 'auto' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json.error, { message: "usageMode must be 'burst' or 'single'", code: 'INVALID_REQUEST' });
    const ok = await h.http(port, 'POST', '/v1/images/generations', { prompt: 'x', steps: 1, usageMode: 'single' });
    assert.equal(ok.status, 201);
    await h.pollUntil(port, ok.json.id, h.terminal);
    assert.equal(server.getBackendInfo().state, 'absent');
  });
});

describe('idle release', () => {
  test('a warm sd-server is released after idleTimeoutMs; a job re-arms the timer', async () => {
    await start({ idleTimeoutMs: 300 });
    await image();
    const t0 = Date.now();
    await image(); // re-arms
    const released = await nextStatus((e) => e.state === 'absent');
    const waited = Date.now() - t0;
    assert.equal(released.reason, 'idle-timeout');
    assert.ok(waited >= 250, `released after ${waited} ms`);
    assert.deepEqual(events.slice(-2), ['stopping:idle-timeout', 'absent:idle-timeout']);
    await image();
    assert.equal(server.getBackendInfo().state, 'ready', 'spawned again on demand');
  });

  test('preload: true spawns during start(); unused, it is released after idleTimeoutMs too', async () => {
    const info = await start({ preload: true, idleTimeoutMs: 200 });
    assert.equal(info.backend.state, 'ready');
    assert.ok(h.processAlive(info.pid));
    assert.equal((await nextStatus((e) => e.state === 'absent')).reason, 'idle-timeout');
    assert.deepEqual(events, [...SPAWN, 'stopping:idle-timeout', 'absent:idle-timeout']);
  });

  test('idleTimeoutMs 0 (or non-finite) never releases', async () => {
    for (const idleTimeoutMs of [0, Infinity]) {
      await start({ idleTimeoutMs, jobActivityTimeoutMs: 0 });
      await image();
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(server.getBackendInfo().state, 'ready');
      await server.stop();
    }
  });
});

describe('releaseBackend', () => {
  test('explicit by default; absent is a no-op; the server keeps running and respawns on demand', async () => {
    await start();
    await server.releaseBackend();
    assert.deepEqual(events, []);
    await image();
    await server.releaseBackend();
    assert.deepEqual(events.slice(-2), ['stopping:explicit', 'absent:explicit']);
    assert.equal(server.isRunning(), true);
    assert.equal(await server.isHealthy(), true);
    await server.releaseBackend({ reason: 'llm-start' });
    assert.equal(events.length, SPAWN.length + JOB.length + 2, 'nothing more to release');
    await image();
    assert.equal(server.getBackendInfo().state, 'ready');
  });

  test('overlapping releases end with the highest-ranked reason', async () => {
    await start();
    await image();
    await Promise.all([server.releaseBackend({ reason: 'single' }), server.releaseBackend({ reason: 'shutdown' }), server.releaseBackend({ reason: 'cancel' })]);
    assert.deepEqual(events.slice(-2), ['stopping:single', 'absent:shutdown']);
  });

  test('releases called in one tick all count, however long that tick lasts', async () => {
    await start();
    await image();
    const first = server.releaseBackend({ reason: 'single' });
    // A busy JS thread: a stop begun at once on another thread would end here, before the
    // second call, and report 'single'.
    const until = Date.now() + 300;
    while (Date.now() < until);
    await Promise.all([first, server.releaseBackend({ reason: 'shutdown' })]);
    assert.deepEqual(events.slice(-2), ['stopping:single', 'absent:shutdown']);
  });

  test('waitForInFlight lets the running image finish first', async () => {
    process.env.FAKE_SD_STEP_MS = '30';
    await start();
    const busy = nextStatus((e) => e.state === 'busy');
    const p = image({ steps: 5 });
    await busy;
    await server.releaseBackend({ reason: 'llm-start', waitForInFlight: true });
    assert.ok(h.pngSize((await p).image));
    assert.deepEqual(events.slice(-2), ['stopping:llm-start', 'absent:llm-start']);
  });

  test('a release during a spawn aborts it (BACKEND_RELEASED_DURING_START)', async () => {
    process.env.FAKE_SD_HANG = 'load';
    await start();
    const starting = nextStatus((e) => e.state === 'starting');
    // The handler is attached at once: the rejection can land while releaseBackend is awaited.
    const p = assert.rejects(image(), (e) => e.details.code === 'BACKEND_RELEASED_DURING_START');
    await starting;
    await server.releaseBackend({ reason: 'explicit' });
    await p;
    assert.deepEqual(events, ['starting:spawned', 'absent:start-failed']);
  });

  test('stop() releases with reason stop; a cancel while generating releases with reason cancel', async () => {
    process.env.FAKE_SD_STEP_MS = '50';
    await start();
    let busy = nextStatus((e) => e.state === 'busy');
    const p = assert.rejects(image({ steps: 40 }), (e) => e.code === 'GENERATION_CANCELLED');
    await busy;
    const released = nextStatus((e) => e.state === 'absent');
    await server.cancelImageGeneration(server.getActiveGenerationId());
    await p;
    assert.equal((await released).reason, 'cancel');
    assert.equal(server.getBackendInfo().state, 'absent', 'not respawned until the next image');
    busy = nextStatus((e) => e.state === 'busy');
    const q = assert.rejects(image({ steps: 40 }), (e) => e.code === 'GENERATION_CANCELLED');
    await busy;
    await server.stop();
    await q;
    // As genai-electron 0.26: stop() cancels the running image first, then raises the reason.
    assert.deepEqual(events.slice(-2), ['stopping:cancel', 'absent:stop']);
  });
});

describe('orchestrator hooks', () => {
  test('generateImage delegates to the orchestrator; releases are reported to it', async () => {
    const calls = [];
    const orchestrator = {
      orchestrateImageGeneration: async (config) => {
        calls.push('orchestrate');
        const r = await server.executeImageGeneration(config);
        await server.settleResidency(server.resolveUsageMode(config.usageMode, true));
        return r;
      },
      onDiffusionBackendReleased: (reason) => calls.push(`released:${reason}`),
    };
    const s = new g.DiffusionServerManager(g.modelManager, g.systemInfo, {});
    assert.equal(s.getOrchestrator(), undefined);
    server.setOrchestrator(orchestrator);
    assert.equal(server.getOrchestrator(), orchestrator);
    await start();
    const r = await image();
    assert.ok(h.pngSize(r.image));
    assert.deepEqual(calls, ['orchestrate', 'released:single'], "the LLM was offloaded, so 'auto' settles as single");
  });
});

describe('executeImageGeneration and executeBatchGeneration', () => {
  test('flag overrides respawn sd-server with reason flags-changed', async () => {
    const log = h.argsLog(env.tmp);
    await start();
    await server.executeImageGeneration({ prompt: 'x', steps: 1 });
    await server.executeImageGeneration({ prompt: 'x', steps: 1 }, { offloadToCpu: true });
    assert.equal(log.all().length, 2);
    assert.ok(log.last().includes('--offload-to-cpu') && !log.all()[0].includes('--offload-to-cpu'));
    assert.deepEqual(events, [...SPAWN, ...JOB, 'stopping:flags-changed', 'absent:flags-changed', ...SPAWN, ...JOB]);
    assert.equal(server.getBackendInfo().flags.offloadToCpu, true);
  });

  test('a batch: one job per image, seeds seed+i, progress over the whole batch', async () => {
    const log = h.argsLog(env.tmp);
    await start();
    const pcts = [];
    const rs = await server.executeBatchGeneration({ prompt: 'three', count: 3, seed: 40, steps: 2, width: 64, height: 64, onProgress: (s, t, st, p) => pcts.push(p) });
    assert.deepEqual(rs.map((r) => r.seed), [40, 41, 42]);
    for (const r of rs) assert.deepEqual(h.pngSize(r.image), { width: 64, height: 64 });
    assert.equal(log.all().length, 1);
    for (let i = 1; i < pcts.length; i++) assert.ok(pcts[i] >= pcts[i - 1], `monotonic: ${pcts}`);
    assert.ok(pcts.some((p) => p > 0 && p < 34) && pcts.some((p) => p > 67 && p < 100), `spread: ${pcts}`);
    assert.equal(pcts.at(-1), 100);
    const random = await server.executeBatchGeneration({ prompt: 'two', count: 2, steps: 1 });
    assert.equal(random.length, 2);
  });
});

describe('HTTP access (allowedOrigins, Origin and Host guards)', () => {
  test('default: no CORS headers, Vary: Origin, cross-origin writes refused, reads allowed', async () => {
    await start();
    const port = server.getPort();
    const get = await raw(port, 'GET', '/health', { Origin: 'http://evil.example' });
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], undefined);
    assert.equal(get.headers.vary, 'Origin');
    const post = await raw(port, 'POST', '/v1/images/generations', { Origin: 'http://evil.example', 'Content-Type': 'application/json' }, '{"prompt":"x"}');
    assert.equal(post.status, 403);
    assert.equal(post.json.error.code, 'INVALID_ORIGIN');
    assert.match(post.json.error.message, /^Rejected cross-origin POST from "http:\/\/evil\.example"/);
    const del = await raw(port, 'DELETE', '/v1/images/generations/gen_1_x', { Origin: 'http://evil.example' });
    assert.equal(del.status, 403);
    const pre = await raw(port, 'OPTIONS', '/v1/images/generations', { Origin: 'http://evil.example' });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    const noOrigin = await raw(port, 'POST', '/v1/images/generations', { 'Content-Type': 'application/json' }, '{"prompt":"x","steps":1}');
    assert.equal(noOrigin.status, 201, 'Node, Electron main and curl send no Origin');
    await h.pollUntil(port, noOrigin.json.id, h.terminal);
  });

  test('Host guard on a loopback bind: DNS-rebinding names refused, localhost and IP literals accepted', async () => {
    await start();
    const port = server.getPort();
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example']) {
      const r = await raw(port, 'GET', '/health', { Host: host });
      assert.equal(r.status, 403, host);
      assert.equal(r.json.error.code, 'INVALID_HOST');
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, 'app.localhost', `[::1]:${port}`]) {
      assert.equal((await raw(port, 'GET', '/health', { Host: host })).status, 200, host);
    }
  });

  test('allowedOrigins: the exact origin is echoed with the CORS headers; * allows any', async () => {
    await start({ allowedOrigins: ['http://app.example'] });
    let port = server.getPort();
    const ok = await raw(port, 'POST', '/v1/images/generations', { Origin: 'http://app.example', 'Content-Type': 'application/json' }, '{"prompt":"x","steps":1}');
    assert.equal(ok.status, 201);
    assert.equal(ok.headers['access-control-allow-origin'], 'http://app.example');
    assert.equal(ok.headers['access-control-allow-methods'], 'GET, POST, OPTIONS, DELETE');
    assert.equal(ok.headers['access-control-allow-headers'], 'Content-Type');
    await h.pollUntil(port, ok.json.id, h.terminal);
    const other = await raw(port, 'POST', '/v1/images/generations', { Origin: 'http://other.example' }, '{}');
    assert.equal(other.status, 403);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    await server.stop();
    await start({ allowedOrigins: ['*'] });
    port = server.getPort();
    const any = await raw(port, 'GET', '/health', { Origin: 'http://anything.example' });
    assert.equal(any.headers['access-control-allow-origin'], '*');
  });

  test('a non-loopback bind has no Host guard', async () => {
    await start({ host: '0.0.0.0' });
    const r = await raw(server.getPort(), 'GET', '/health', { Host: 'evil.example' });
    assert.equal(r.status, 200);
  });
});

describe('calibrate', () => {
  const gen = { steps: 2, cfgScale: 1, sampler: 'euler' };
  // Calibration runs without a started server: sd-server is found as start() would find it.
  before(() => {
    process.env.GENAI_ELECTRON_SD_BINARY_DIR = h.FAKE_SD_DIR;
  });

  test('every combo at every size: progress, medians, recommendation; the server stays stopped', async () => {
    const log = h.argsLog(env.tmp);
    const progress = [];
    const emitted = [];
    server.on('calibration-progress', (p) => emitted.push(p));
    const statuses = [];
    server.on('status', (s) => statuses.push(s));
    const combos = [{ label: 'auto' }, { label: 'offload', offloadToCpu: true }];
    const sizes = [{ width: 64, height: 64 }, { width: 128, height: 64 }];
    const running = server.calibrate({ modelId: 'flux-2-klein', sizes, generation: gen, combos, samples: 2, usageMode: 'burst', onProgress: (p) => progress.push(p) });
    assert.equal(server.isCalibrating(), true);
    await assert.rejects(start(), /calibration is in progress/);
    const report = await running;
    assert.equal(server.isCalibrating(), false);
    assert.equal(server.getStatus(), 'stopped');
    assert.deepEqual(statuses, [], 'calibration never starts the public server');
    assert.deepEqual(progress, emitted);
    assert.equal(progress[0].phase, 'preparing');
    assert.equal(progress.at(-1).phase, 'done');
    assert.equal(progress.at(-1).overallPercent, 100);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].overallPercent >= progress[i - 1].overallPercent);
    assert.ok(progress.some((p) => p.phase === 'warmup') && progress.some((p) => p.phase === 'sampling' && p.sample === 2 && p.sampleCount === 2));
    assert.ok(progress.some((p) => p.generationPercent > 0));
    assert.equal(report.modelId, 'flux-2-klein');
    assert.equal(report.policyVersion, 'diffusion-offload-v2');
    assert.equal(report.samples, 2);
    assert.equal(report.usageMode, 'burst');
    assert.equal(report.runs.length, 4);
    for (const run of report.runs) {
      assert.equal(run.status, 'ok');
      assert.equal(run.samplesMs.length, 2);
      assert.equal(run.timeTakenMs, (run.samplesMs[0] + run.samplesMs[1]) / 2);
      assert.ok(run.stageMs && run.stageMs.loadMs >= 0, JSON.stringify(run));
      assert.equal(typeof run.resolved.offloadToCpu, 'boolean');
    }
    assert.equal(report.runs.find((r) => r.combo.label === 'offload').resolved.offloadToCpu, true);
    assert.deepEqual(Object.keys(report.recommended).sort(), ['128x64', '64x64']);
    // Burst: one sd-server per combo (released between combos).
    assert.equal(log.all().length, 2);
    assert.ok(events.includes('absent:calibration'));
  });

  test('single: cold runs (a spawn per run); SD3.5-Large drops clipOnCpu combos; failures classified', async () => {
    const log = h.argsLog(env.tmp);
    const report = await server.calibrate({
      modelId: 'sd3.5-large-test',
      sizes: [{ width: 64, height: 64 }],
      generation: gen,
      combos: [{ label: 'a' }, { label: 'clip-cpu', clipOnCpu: true }],
      samples: 1,
    });
    assert.equal(report.usageMode, 'single');
    assert.deepEqual(report.skippedCombos.map((s) => s.combo.label), ['clip-cpu']);
    assert.equal(report.runs.length, 1);
    assert.equal(log.all().length, 2, 'warm-up and the sample each spawn');
    process.env.FAKE_SD_FAIL_LOAD = '1';
    const failed = await server.calibrate({ modelId: 'flux-2-klein', sizes: [{ width: 64, height: 64 }], generation: gen, combos: [{ label: 'x' }], samples: 1 });
    assert.equal(failed.runs[0].status, 'error');
    assert.match(failed.runs[0].error, /Failed to load model/);
    assert.deepEqual(failed.recommended, {});
  });

  test('abort: CALIBRATION_ABORTED with the partial runs; bad sizes and a running server are refused', async () => {
    await assert.rejects(server.calibrate({ modelId: 'flux-2-klein', sizes: [], generation: gen }), /at least one size/);
    await assert.rejects(server.calibrate({ modelId: 'flux-2-klein', sizes: [{ width: 100, height: 64 }], generation: gen }), /positive multiples of 64/);
    const ac = new AbortController();
    const sizes = [{ width: 64, height: 64 }];
    const combos = [{ label: 'one' }, { label: 'two', offloadToCpu: true }, { label: 'three', vaeOnCpu: true }];
    const p = server.calibrate({ modelId: 'flux-2-klein', sizes, generation: gen, combos, samples: 1, signal: ac.signal });
    server.on('calibration-progress', (e) => {
      if (e.comboIndex === 1 && e.phase === 'sampling') ac.abort();
    });
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.equal(e.details.code, 'CALIBRATION_ABORTED');
      assert.equal(e.details.runs.length, 1);
      assert.equal(e.details.runs[0].combo.label, 'one');
      return true;
    });
    assert.equal(server.isCalibrating(), false);
    await start();
    await assert.rejects(server.calibrate({ modelId: 'flux-2-klein', sizes, generation: gen }), /while the server is running/);
  });

  test('pickRecommended: the fewest forced flags within the tolerance, then the fastest', () => {
    const size = { width: 64, height: 64 };
    const runs = [
      { size, combo: { label: 'forced', offloadToCpu: true, clipOnCpu: false }, status: 'ok', timeTakenMs: 100 },
      { size, combo: { label: 'auto' }, status: 'ok', timeTakenMs: 104 },
      { size, combo: { label: 'oom' }, status: 'oom' },
      { size: { width: 128, height: 128 }, combo: { label: 'auto' }, status: 'ok', timeTakenMs: 300 },
      { size: { width: 128, height: 128 }, combo: { label: 'fast', vaeOnCpu: true }, status: 'ok', timeTakenMs: 200 },
    ];
    assert.deepEqual(pickRecommended(runs, 5), { '64x64': { label: 'auto' }, '128x128': { label: 'fast', vaeOnCpu: true } });
    assert.deepEqual(pickRecommended(runs, 1)['64x64'].label, 'forced');
  });
});

describe('latency', () => {
  // sd-server (cpp-httplib) answers without TCP_NODELAY; on a reused keep-alive connection every
  // request then waits about 40 ms for a delayed ACK. The stand-in reproduces that.
  test('every request to sd-server goes on a fresh connection, so no image waits on a delayed ACK', async () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const statsFile = path.join(env.tmp, 'nagle-stats.json');
    process.env.NAGLE_SD_STATS = statsFile;
    try {
      await start({ binaryPath: path.join(__dirname, 'fixtures', 'nagle-sd', 'sd-server') });
      await image(); // spawn
      const times = [];
      for (let i = 0; i < 7; i++) {
        const t0 = process.hrtime.bigint();
        await image();
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const stats = JSON.parse(fs.readFileSync(statsFile, 'utf8'));
      assert.equal(stats.connections, stats.requests, `connections reused: ${JSON.stringify(stats)}`);
      times.sort((a, b) => a - b);
      // With a reused connection each image takes 2 x 40+ ms (submit and poll).
      assert.ok(times[3] < 40, `median image ${times[3].toFixed(1)} ms: ${times.map((t) => t.toFixed(1))}`);
    } finally {
      delete process.env.NAGLE_SD_STATS;
    }
  });
});
