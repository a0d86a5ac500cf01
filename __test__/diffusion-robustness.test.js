'use strict';
/**
 * The diffusion server under adversity: a job that hangs (stall watchdog), sd-server's port taken
 * between choosing and binding it, stop() at awkward moments, bad numbers and awkward prompts,
 * a batch crashing half way, and a host process that exits or is killed with sd-server running.
 */
const { test, describe, before, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const g = require('..');
const binding = require('../binding.js');
const h = require('./helpers/diffusion.js');

let env;
let server;
let port;

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 24);
  process.env.FAKE_SD_STEP_MS = '2';
  h.kleinRecord(env.root);
});

afterEach(async () => {
  await server.stop();
  for (const k of Object.keys(process.env)) {
    if (k.startsWith('FAKE_SD_') && k !== 'FAKE_SD_STEP_MS' && k !== 'FAKE_SD_HEADER_ONLY') delete process.env[k];
  }
  process.env.FAKE_SD_STEP_MS = '2';
  const left = h.processesMatching(env.root);
  assert.deepEqual(left, [], `no sd.cpp process left behind: ${left.map((p) => fs.readFileSync(`/proc/${p}/stat`, 'utf8')).join('; ')}`);
});

async function start(extra = {}) {
  server = server || new g.DiffusionServerManager();
  const info = await server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath, ...extra });
  port = info.port;
  return info;
}

const post = (body) => h.http(port, 'POST', '/v1/images/generations', body);
const tick = () => new Promise((r) => setImmediate(r));

/** Polls `fn` until it returns a truthy value, failing after `ms`. */
async function until(fn, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The next `backend-status` event whose state is `state`. */
const backendState = (state) => h.nextEvent(server, 'backend-status', (e) => e.state === state);

describe('job activity watchdog (jobActivityTimeoutMs)', () => {
  test('a job hung mid-sampling: BACKEND_JOB_STUCK, sd-server released (stuck), the queue goes on', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_HANG = 'step';
    process.env.FAKE_SD_HANG_AT_STEP = '2';
    await start({ jobActivityTimeoutMs: 400 });
    const crashed = [];
    server.on('crashed', (c) => crashed.push(c));
    const states = [];
    server.on('backend-status', (e) => states.push(`${e.state}:${e.reason}`));
    const busy = backendState('busy');
    const hung = server.generateImage({ prompt: 'hangs', steps: 4 });
    const next = server.generateImage({ prompt: 'queued behind it', steps: 2 });
    await busy;
    const pid = server.getPid();
    // Only the first sd-server hangs: the next spawn reads the environment without the hang.
    delete process.env.FAKE_SD_HANG;
    await assert.rejects(hung, (e) => {
      assert.ok(e instanceof g.ServerError, e.stack);
      assert.match(e.message, /made no progress for \d+ ms \(jobActivityTimeoutMs 400\)/);
      assert.equal(e.details.code, 'BACKEND_JOB_STUCK');
      assert.equal(e.details.timeoutMs, 400);
      assert.ok(e.details.idleMs >= 400, String(e.details.idleMs));
      assert.equal(typeof e.details.jobId, 'string');
      assert.ok(['loading', 'diffusion', 'decoding'].includes(e.details.stage), e.details.stage);
      assert.ok(Array.isArray(e.details.args) && e.details.args.includes('--diffusion-model'));
      assert.equal(typeof e.details.backendStderrTail, 'string');
      assert.match(e.details.suggestion, /jobActivityTimeoutMs/);
      return true;
    });
    const r = await next;
    assert.ok(h.pngSize(r.image));
    assert.equal(h.processAlive(pid), false, 'the hung sd-server was killed');
    assert.notEqual(server.getPid(), pid);
    assert.equal(server.getStatus(), 'running');
    assert.deepEqual(crashed, [], 'a deliberate kill is not a crash');
    assert.deepEqual(states.slice(0, 5), ['starting:spawned', 'ready:ready', 'busy:job', 'stopping:stuck', 'absent:stuck']);
  });

  test('a frozen sd-server (HTTP unanswered too): HTTP job ends in error (BACKEND_ERROR), the next one runs', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_HANG = 'freeze';
    await start({ jobActivityTimeoutMs: 400 });
    const busy = backendState('busy');
    const a = (await post({ prompt: 'freezes', steps: 3 })).json.id;
    const b = (await post({ prompt: 'after', steps: 1 })).json.id;
    await busy;
    delete process.env.FAKE_SD_HANG;
    const seenA = await h.pollUntil(port, a, h.terminal);
    const last = seenA[seenA.length - 1].json;
    assert.equal(last.status, 'error');
    assert.equal(last.error.code, 'BACKEND_ERROR');
    assert.match(last.error.message, /made no progress/);
    const seenB = await h.pollUntil(port, b, h.terminal);
    assert.equal(seenB[seenB.length - 1].json.status, 'complete');
  });

  test('cancelling a job of a frozen sd-server releases it (cancel) and does not block the queue', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_HANG = 'freeze';
    await start(); // default watchdog: 10 minutes
    const busy = backendState('busy');
    const frozen = server.generateImage({ prompt: 'freezes', steps: 3 });
    const rejected = assert.rejects(frozen, (e) => e.code === 'GENERATION_CANCELLED');
    const id = await until(() => server.getActiveGenerationId(), 5000, 'the job to run');
    await busy;
    delete process.env.FAKE_SD_HANG;
    // Let the worker reach its status poll, which a frozen sd-server never answers.
    await new Promise((r) => setTimeout(r, 400));
    const released = backendState('absent');
    await server.cancelImageGeneration(id);
    await rejected;
    assert.equal((await released).reason, 'cancel');
    const r = await server.generateImage({ prompt: 'next', steps: 1 });
    assert.ok(h.pngSize(r.image));
  });

  test('cli backend (older name jobStallTimeoutMs): a hung sd-cli is killed and the job fails', async () => {
    server = new g.DiffusionServerManager();
    await start({ backend: 'cli', jobStallTimeoutMs: 1500 });
    process.env.FAKE_SD_HANG = 'step';
    await assert.rejects(server.generateImage({ prompt: 'hangs', steps: 3 }), (e) => {
      assert.match(e.message, /stable-diffusion\.cpp job made no progress for \d+ ms \(jobActivityTimeoutMs 1500\)/);
      assert.equal(e.details.code, 'BACKEND_JOB_STUCK');
      return true;
    });
    delete process.env.FAKE_SD_HANG;
    assert.ok(h.pngSize((await server.generateImage({ prompt: 'fine', steps: 1 })).image));
  });

  test('0 (or less) turns the watchdog off; a non-number is refused', async () => {
    server = new g.DiffusionServerManager();
    await assert.rejects(start({ jobActivityTimeoutMs: '5s' }), /jobActivityTimeoutMs must be a number/);
    process.env.FAKE_SD_STEP_MS = '150';
    // Steps 150 ms apart with a 1 ms watchdog would be stuck at once; off, the image completes.
    await start({ jobActivityTimeoutMs: 0 });
    assert.ok(h.pngSize((await server.generateImage({ prompt: 'slow but fine', steps: 3 })).image));
    await server.stop();
    await start({ jobActivityTimeoutMs: 1 });
    await assert.rejects(server.generateImage({ prompt: 'stuck', steps: 3 }), (e) => e.details.code === 'BACKEND_JOB_STUCK');
  });
});

describe("sd-server's port taken between choosing and binding it", () => {
  /** An HTTP server answering 200 to everything: the worst neighbour (it fools a naive probe). */
  async function neighbour() {
    const s = http.createServer((req, res) => res.end('{"ok":true}'));
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    return s;
  }

  test('the first image retries the spawn on a new port and is served', async () => {
    server = new g.DiffusionServerManager();
    const blocker = await neighbour();
    const taken = blocker.address().port;
    const log = h.argsLog(env.tmp);
    try {
      binding.diffusionTestForceNextPorts([taken]);
      await start();
      assert.ok(h.pngSize((await server.generateImage({ prompt: 'works', steps: 1 })).image));
      const spawns = log.all().map((a) => Number(a[a.indexOf('--listen-port') + 1]));
      assert.equal(spawns.length, 2, JSON.stringify(spawns));
      assert.equal(spawns[0], taken);
      assert.notEqual(spawns[1], taken);
      assert.ok(h.processAlive(server.getPid()));
      assert.ok((await server.getLogs(200)).some((l) => l.includes(`could not listen on 127.0.0.1:${taken}`) && l.includes('retrying on another port')));
    } finally {
      blocker.close();
    }
  });

  test('bounded: after 3 lost ports the image fails with a clear error and leaves nothing', async () => {
    server = new g.DiffusionServerManager();
    const blocker = await neighbour();
    const taken = blocker.address().port;
    const log = h.argsLog(env.tmp);
    try {
      binding.diffusionTestForceNextPorts([taken, taken, taken]);
      await start();
      await assert.rejects(server.generateImage({ prompt: 'x', steps: 1 }), (e) => {
        assert.ok(e instanceof g.ServerError, e.stack);
        assert.match(e.message, /sd-server could not listen on 127\.0\.0\.1:\d+ .*port was probably taken/);
        assert.equal(e.details.code, 'PORT_UNAVAILABLE');
        return true;
      });
      assert.equal(log.all().length, 3);
      assert.equal(server.getBackendInfo().state, 'absent');
    } finally {
      blocker.close();
    }
  });
});

describe('stop at awkward moments', () => {
  test('stop() called right after start() (not awaited) aborts that start', async () => {
    server = new g.DiffusionServerManager();
    const statuses = [];
    server.on('status', (s) => statuses.push(s));
    const starting = start();
    const stopping = server.stop();
    await assert.rejects(starting, (e) => /aborted by stop/.test(e.message) && e.details.code === 'SD_SERVER_START_ABORTED');
    await stopping;
    // The native start may finish on its own thread before stop() runs (a loaded machine):
    // then stop() stops it, and start() still rejects. Either way the server ends stopped.
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(statuses[statuses.length - 1], 'stopped');
  });

  test('a native start that completes before stop() runs is still aborted and stopped', async () => {
    server = new g.DiffusionServerManager();
    const starting = start();
    // Spin in this tick until the native start has committed `running` on its own thread, so
    // its result cannot have reached JS yet, then stop.
    const deadline = Date.now() + 5000;
    while (!server.isRunning()) {
      if (Date.now() > deadline) throw new Error('the native start did not commit');
    }
    const stopping = server.stop();
    await assert.rejects(starting, (e) => e.details.code === 'SD_SERVER_START_ABORTED');
    await stopping;
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(server.getPort(), 0);
  });

  test('stop with a job running and two queued: all rejected as cancelled', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_STEP_MS = '100';
    await start();
    const jobs = [1, 2, 3].map((i) => server.generateImage({ prompt: `job ${i}`, steps: 50, count: i }));
    const all = Promise.allSettled(jobs);
    await until(() => server.getActiveGenerationId(), 5000, 'a job to run');
    await server.stop();
    for (const r of await all) {
      assert.equal(r.status, 'rejected');
      assert.equal(r.reason.code, 'GENERATION_CANCELLED');
    }
  });

  test('stop while a crashed sd-server is being replaced', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_CRASH_AT_STEP = '1';
    await start();
    const crashing = server.generateImage({ prompt: 'crashes', steps: 2 });
    const queued = assert.rejects(server.generateImage({ prompt: 'waits for the respawn', steps: 2 }), (e) => e.code === 'GENERATION_CANCELLED');
    await backendState('busy');
    // The replacement takes long to load, so stop() lands in the middle of it.
    delete process.env.FAKE_SD_CRASH_AT_STEP;
    process.env.FAKE_SD_LOAD_MS = '5000';
    const respawning = backendState('starting');
    await assert.rejects(crashing, (e) => e.details.code === 'SD_SERVER_EXITED');
    await respawning;
    const t0 = Date.now();
    await server.stop();
    assert.ok(Date.now() - t0 < 3000, `stop took ${Date.now() - t0} ms`);
    await queued;
    assert.equal(server.getStatus(), 'stopped');
  });
});

describe('requests', () => {
  test('NaN, Infinity, negative and huge numbers are refused with the field named', async () => {
    server = new g.DiffusionServerManager();
    await assert.rejects(start({ threads: NaN }), (e) => e instanceof g.ServerError && /threads must be a number, got "NaN"/.test(e.message));
    await start();
    const cases = [
      [{ width: NaN }, /width must be an integer between 64 and 4096, got "NaN"/],
      [{ height: Infinity }, /height must be an integer between 64 and 4096, got "Infinity"/],
      [{ steps: -Infinity }, /steps must be an integer between 1 and 1000/],
      [{ cfgScale: NaN }, /cfgScale must be a number between 0 and 100/],
      [{ seed: NaN }, /seed must be an integer/],
      [{ count: NaN }, /count must be between 1 and 5/],
      [{ width: -64 }, /width must be an integer/],
      [{ height: 1e9 }, /height must be an integer/],
      [{ steps: 0 }, /steps must be an integer/],
      [{ seed: 1.5 }, /seed must be an integer/],
    ];
    for (const [extra, want] of cases) {
      await assert.rejects(server.generateImage({ prompt: 'x', ...extra }), (e) => {
        assert.ok(e instanceof g.ServerError, `${JSON.stringify(extra)}: ${e.stack}`);
        assert.match(e.message, want);
        assert.equal(e.details.code, 'INVALID_REQUEST');
        return true;
      });
    }
    for (const body of [{ prompt: 'x', width: -1 }, { prompt: 'x', steps: 1e6 }, { prompt: 'x', seed: 'abc' }, { prompt: 'x', width: '512' }]) {
      const r = await post(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.code, 'INVALID_REQUEST');
    }
    assert.equal(server.getActiveGenerationId(), undefined, 'nothing reached sd.cpp');
  });

  test('seeds: above 2^31 kept (seed+i in a batch), -1 random in the contract range', async () => {
    server = new g.DiffusionServerManager();
    await start();
    const big = 2 ** 33 + 7;
    const r = await server.generateImage({ prompt: 'big seed', seed: big, count: 2, steps: 1 });
    assert.deepEqual(r.images.map((i) => i.seed), [big, big + 1]);
    const rnd = await server.generateImage({ prompt: 'random', seed: -1, steps: 1 });
    assert.ok(Number.isInteger(rnd.seed) && rnd.seed >= 0 && rnd.seed <= 2147483646, String(rnd.seed));
  });

  test('prompts with quotes, newlines, unicode and shell syntax reach sd.cpp unchanged', async () => {
    server = new g.DiffusionServerManager();
    const prompt = `a "quoted" 'cat' $(rm -rf /) \`x\` ; | & \n second line \t 猫 🐈 ${'long '.repeat(2000)}`;
    const log = h.argsLog(env.tmp);
    await start({ backend: 'cli' });
    await server.generateImage({ prompt, negativePrompt: 'no "dogs"\n', steps: 1 });
    const args = log.last();
    assert.equal(args[args.indexOf('-p') + 1], prompt);
    assert.equal(args[args.indexOf('-n') + 1], 'no "dogs"\n');
  });

  test('count 5 with sd-server crashing in image 3: one clear failure, progress never 100, the next batch works', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_CRASH_AT_STEP = '5'; // steps 2: image 3's first step
    await start();
    const pcts = [];
    await assert.rejects(
      server.generateImage({ prompt: 'five', count: 5, steps: 2, seed: 100, onProgress: (s, t, st, p) => pcts.push(p) }),
      (e) => e instanceof g.ServerError && e.details.code === 'SD_SERVER_EXITED' && /SIGSEGV/.test(e.message),
    );
    for (let i = 1; i < pcts.length; i++) assert.ok(pcts[i] >= pcts[i - 1], `monotonic: ${pcts}`);
    assert.ok(pcts.every((p) => p < 100), `never 100: ${pcts}`);
    delete process.env.FAKE_SD_CRASH_AT_STEP;
    const r = await server.generateImage({ prompt: 'five again', count: 5, steps: 1, seed: 7 });
    assert.deepEqual(r.images.map((i) => i.seed), [7, 8, 9, 10, 11]);
  });

  test('a replayed real run crashing after its loading passes: progress never went down, never 100', async () => {
    server = new g.DiffusionServerManager();
    h.replayRealRun();
    process.env.FAKE_SD_CRASH_AT_STEP = '2';
    await start();
    const calls = [];
    await assert.rejects(
      server.generateImage({ prompt: 'replayed', width: 64, height: 64, onProgress: (...a) => calls.push(a) }),
      (e) => e instanceof g.ServerError && e.details.code === 'SD_SERVER_EXITED' && /SIGSEGV/.test(e.message),
    );
    assert.ok(calls.some((c) => c[2] === 'loading' && c[1] === 280), JSON.stringify(calls));
    const pcts = calls.map((c) => c[3]);
    for (let i = 1; i < pcts.length; i++) assert.ok(pcts[i] >= pcts[i - 1], `monotonic: ${pcts}`);
    assert.ok(pcts.every((p) => p < 100), `never 100: ${pcts}`);
  });

  test('cancel: a queued batch never runs; a finished id is a no-op; two pollers see the same result', async () => {
    server = new g.DiffusionServerManager();
    process.env.FAKE_SD_STEP_MS = '20';
    await start();
    const a = (await post({ prompt: 'runs', steps: 10 })).json.id;
    const b = (await post({ prompt: 'queued batch', steps: 10, count: 3 })).json.id;
    await server.cancelImageGeneration(b);
    const [pa, pb] = await Promise.all([h.pollUntil(port, a, h.terminal), h.pollUntil(port, a, h.terminal)]);
    const da = pa[pa.length - 1].json;
    assert.equal(da.status, 'complete');
    assert.deepEqual(pb[pb.length - 1].json, da);
    assert.equal((await h.http(port, 'GET', `/v1/images/generations/${b}`)).json.status, 'cancelled');
    await server.cancelImageGeneration(a); // finished: no-op
    await server.cancelImageGeneration(b); // already cancelled: no-op
    assert.equal((await h.http(port, 'DELETE', `/v1/images/generations/${a}`)).status, 409);
    assert.equal(server.getActiveGenerationId(), undefined);
  });
});

describe('logs', () => {
  test('getLogs on a userData without a log: empty, no error', async () => {
    server = new g.DiffusionServerManager();
    const fresh = h.setup();
    g.configure({ userDataPath: fresh.root });
    try {
      const m = new g.DiffusionServerManager();
      assert.deepEqual(await m.getLogs(), []);
      assert.deepEqual(await m.getLogs(0), []);
      assert.deepEqual(await m.getStructuredLogs(5), []);
      await m.clearLogs();
      assert.deepEqual(await m.getLogs(-3), []);
    } finally {
      g.configure({ userDataPath: env.root });
    }
  });
});

describe('the host process ending', () => {
  const CHILD = `
    const g = require(${JSON.stringify(path.join(__dirname, '..'))});
    g.configure({ userDataPath: process.argv[1] });
    const s = new g.DiffusionServerManager();
    s.on('backend-status', (e) => {
      if (e.state !== 'busy') return;
      process.stdout.write(JSON.stringify({ pid: s.getPid() }) + '\\n');
      if (process.argv[3] === 'exit') setTimeout(() => process.exit(0), 100);
    });
    s.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: process.argv[2] }).then(() => {
      s.generateImage({ prompt: 'in flight', steps: 1000 }).catch(() => {});
    }, (e) => { console.error(e); process.exit(3); });
  `;

  for (const how of ['exit', 'SIGKILL']) {
    test(`${how === 'exit' ? 'process.exit()' : 'SIGKILL'} with a job running leaves no sd-server`, async () => {
      server = new g.DiffusionServerManager();
      process.env.FAKE_SD_STEP_MS = '50';
      const child = spawn(process.execPath, ['-e', CHILD, env.root, env.binaryPath, how], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const exited = once(child, 'exit');
      const { pid } = JSON.parse(await until(() => out.split('\n').find((l) => l.startsWith('{')), 15000, 'the child to start'));
      assert.ok(h.processAlive(pid));
      if (how === 'SIGKILL') child.kill('SIGKILL');
      await exited;
      await until(() => !h.processAlive(pid), 5000, `sd-server ${pid} to die`);
    });
  }
});
