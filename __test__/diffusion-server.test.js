'use strict';
/**
 * diffusionServer end to end against the fake sd-server: lifecycle, statuses and events, start
 * errors, generateImage with progress and PNGs, batches, SDXL split, the wrong-VAE failure, logs,
 * and no process left behind.
 */
const { test, describe, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const g = require('..');
const h = require('./helpers/diffusion.js');

let env;
let server;

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 12);
  process.env.FAKE_SD_STEP_MS = '2';
  h.kleinRecord(env.root);
  h.kleinRecord(env.root, { id: 'klein-wrong-vae', vae: 'flux1' });
  h.sdxlSplitRecord(env.root);
  h.sdxlSplitRecord(env.root, { id: 'sdxl-diffusers', unet: 'diffusers' });
});

beforeEach(() => {
  server = new g.DiffusionServerManager();
});

afterEach(async () => {
  await server.stop();
});

const start = (extra = {}) => server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath, ...extra });
const { nextEvent } = h;

describe('lifecycle', () => {
  test('start -> running -> stop with every status and event in order', async () => {
    const events = [];
    for (const e of ['status', 'started', 'stopped', 'restarted', 'crashed']) {
      server.on(e, (...args) => events.push([e, ...args]));
    }
    const binaryLogs = [];
    server.on('binary-log', (e) => binaryLogs.push(e));
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(server.getPort(), 0);
    const info = await start();
    assert.equal(info.status, 'running');
    assert.equal(info.modelId, 'flux-2-klein');
    assert.equal(info.health, 'ok');
    assert.ok(info.port > 0 && info.port === server.getPort());
    // sd-server is spawned on the first image, not by start().
    assert.equal(info.pid, undefined);
    assert.deepEqual(info.backend, { state: 'absent' });
    assert.equal(server.getPid(), undefined);
    assert.equal(await server.isHealthy(), true, 'healthy with the backend absent');
    await server.generateImage({ prompt: 'spawn', steps: 1 });
    const pid = server.getPid();
    assert.ok(h.processAlive(pid), 'sd-server runs after the first image');
    assert.equal(server.getInfo().pid, pid);
    assert.equal(server.getInfo().backend.state, 'ready');
    assert.ok(server.isRunning() && !server.isStopped() && !server.isStarting() && !server.isStopping() && !server.hasCrashed());
    assert.equal(await server.isHealthy(), true);
    assert.deepEqual(server.getConfig(), { modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath });
    assert.ok(!Number.isNaN(Date.parse(info.startedAt)));
    assert.deepEqual(binaryLogs, [{ message: `Using stable-diffusion.cpp binary ${path.join(h.FAKE_SD_DIR, 'sd-server')}`, level: 'info' }]);

    await server.stop();
    assert.equal(server.isStopped(), true);
    assert.equal(server.getPort(), 0);
    assert.equal(server.getPid(), undefined);
    assert.equal(h.processAlive(pid), false, 'sd-server ended and reaped');
    assert.equal(await server.isHealthy(), false);
    await server.stop(); // no-op, no second 'stopped'

    assert.deepEqual(events.map((e) => e.slice(0, 3).map((x) => (typeof x === 'object' ? x.status : x))), [
      ['status', 'starting', 'stopped'],
      ['status', 'running', 'starting'],
      ['started', 'running'],
      ['status', 'stopping', 'running'],
      ['status', 'stopped', 'stopping'],
      ['stopped'],
    ]);
    assert.deepEqual(server.getConfig().modelId, 'flux-2-klein', 'config kept after stop');
  });

  test('restart reuses the last config and emits restarted', async () => {
    await assert.rejects(server.restart(), (e) => e instanceof g.ServerError && /no previous configuration/.test(e.message));
    await start();
    await server.generateImage({ prompt: 'spawn', steps: 1 });
    const firstPid = server.getPid();
    const restarted = once(server, 'restarted');
    const info = await server.restart();
    const [payload] = await restarted;
    assert.equal(payload.status, 'running');
    assert.equal(info.status, 'running');
    assert.equal(info.backend.state, 'absent', 'the new start spawns nothing yet');
    assert.equal(h.processAlive(firstPid), false);
  });

  test('start twice is refused while running and while starting', async () => {
    const p = start();
    await assert.rejects(start(), /already starting/);
    await p;
    await assert.rejects(start(), (e) => e instanceof g.ServerError && e.message === 'Server error: Server is already running');
  });

  test('stop while starting (preload: true) aborts the start and leaves nothing behind', async () => {
    process.env.FAKE_SD_HANG = 'load';
    try {
      const starting = start({ preload: true });
      const failed = assert.rejects(starting, /aborted by stop/);
      await once(server, 'status'); // starting
      const pids = () => h.processesMatching(env.root);
      await server.stop();
      await failed;
      assert.equal(server.getStatus(), 'stopped');
      assert.deepEqual(pids(), []);
    } finally {
      delete process.env.FAKE_SD_HANG;
    }
  });
});

describe('start errors', () => {
  test('unknown config fields are refused before any state change', async () => {
    const statuses = [];
    server.on('status', (s) => statuses.push(s));
    await assert.rejects(start({ modelID: 'x', gpu: 1 }), (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.match(e.message, /^Server error: Unknown configuration fields: modelID, gpu\. Valid fields for DiffusionServerManager are: allowedOrigins, backend, batchSize, binaryPath,/);
      assert.deepEqual(e.details.unknownFields, ['modelID', 'gpu']);
      assert.ok(e.details.validFields.includes('usageMode') && e.details.validFields.includes('startupTimeout'));
      return true;
    });
    assert.deepEqual(statuses, []);
  });

  test('bad numbers are refused (sd.cpp would abort on them)', async () => {
    await assert.rejects(start({ threads: 'four' }), /threads must be a number/);
    await assert.rejects(start({ batchSize: 'two' }), /batchSize must be a number/);
    await assert.rejects(start({ usageMode: 'sometimes' }), /usageMode must be "burst", "single" or "auto"/);
  });

  test('unknown model, and a model that is not diffusion', async () => {
    await assert.rejects(server.start({ modelId: 'nope', port: 'auto' }), (e) => e instanceof g.ModelNotFoundError && e.message === 'Model not found: nope');
    require('./helpers/storage.js').writeRecord(env.root, { id: 'an-llm', name: 'x', type: 'llm', size: 1, path: '/x', downloadedAt: '', source: { type: 'url', url: 'u' } });
    await assert.rejects(server.start({ modelId: 'an-llm', port: 'auto' }), /Model an-llm is not a diffusion model \(type: llm\)/);
    assert.equal(server.getStatus(), 'stopped');
  });

  test('a missing component file is named before spawning', async () => {
    const rec = h.kleinRecord(env.root, { id: 'klein-missing' });
    fs.rmSync(rec.components.llm.path);
    const log = h.argsLog(env.tmp);
    await assert.rejects(start({ modelId: 'klein-missing' }), (e) => e instanceof g.FileSystemError && /\(llm\)/.test(e.message) && e.details.role === 'llm');
    assert.deepEqual(log.all(), [], 'nothing spawned');
  });

  test('a machine without enough RAM: InsufficientResourcesError from canRunModel', async () => {
    const saved = process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
    process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(path.join(env.tmp), 8, { ramGiB: 4 });
    try {
      await assert.rejects(start(), (e) => {
        assert.ok(e instanceof g.InsufficientResourcesError, e.stack);
        assert.match(e.message, /^System cannot run model: Insufficient RAM: model requires 8\.0GB, but only 4\.0GB total/);
        assert.equal(e.details.available, 'Total RAM: 4.0GB');
        return true;
      });
      assert.equal(server.getStatus(), 'stopped');
    } finally {
      process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = saved;
    }
  });

  test('a missing binary is a BinaryError saying where it looked', async () => {
    await assert.rejects(start({ binaryPath: path.join(env.tmp, 'nowhere') }), (e) => {
      assert.ok(e instanceof g.BinaryError);
      assert.match(e.message, /sd-server not found/);
      assert.deepEqual(e.details.searched, [path.join(env.tmp, 'nowhere')]);
      return true;
    });
    const saved = process.env.GENAI_ELECTRON_SD_BINARY_DIR;
    process.env.GENAI_ELECTRON_SD_BINARY_DIR = env.tmp;
    try {
      await assert.rejects(server.start({ modelId: 'flux-2-klein', port: 'auto' }), (e) => {
        assert.ok(e instanceof g.BinaryError);
        assert.deepEqual(e.details.searched, [path.join(env.tmp, 'sd-server'), path.join(env.root, 'binaries', 'diffusion', 'sd-server')]);
        return true;
      });
      process.env.GENAI_ELECTRON_SD_BINARY_DIR = h.FAKE_SD_DIR;
      const info = await server.start({ modelId: 'flux-2-klein', port: 'auto' });
      assert.equal(info.status, 'running', 'found through the environment variable');
    } finally {
      if (saved === undefined) delete process.env.GENAI_ELECTRON_SD_BINARY_DIR;
      else process.env.GENAI_ELECTRON_SD_BINARY_DIR = saved;
    }
  });

  test('port in use is PortInUseError and spawns nothing', async () => {
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address();
    const log = h.argsLog(env.tmp);
    try {
      await assert.rejects(start({ port }), (e) => e instanceof g.PortInUseError && e.details.port === port && e.message === `Port ${port} is already in use`);
      assert.deepEqual(log.all(), []);
      assert.equal(server.getStatus(), 'stopped');
    } finally {
      blocker.close();
    }
  });

  test('a wrong VAE (Flux 1 given to Flux 2) is refused from the headers before spawning, naming both files', async () => {
    await assert.rejects(start({ modelId: 'klein-wrong-vae' }), (e) => {
      assert.ok(e instanceof g.ServerError, e.stack);
      assert.match(e.message, /Incompatible components: the VAE .*ae\.safetensors has 16 latent channels \(Flux 1 or SD3\) but the diffusion model .*flux-2-klein-4b-Q8_0\.gguf works in 32 \(Flux 2\)/);
      assert.equal(e.details.code, 'INCOMPATIBLE_COMPONENTS');
      assert.deepEqual(e.details.roles, ['diffusion_model', 'vae']);
      assert.equal(e.details.files.length, 2);
      return true;
    });
    assert.equal(server.getStatus(), 'stopped');
    assert.deepEqual(h.processesMatching(env.root), [], 'nothing was spawned');
  });

  test('preload: true spawns during start; a component that is not a model file fails the start, named', async () => {
    const rec = h.kleinRecord(env.root, { id: 'klein-garbage-llm' });
    h.modelFiles.writeGarbage(rec.components.llm.path);
    await assert.rejects(start({ modelId: 'klein-garbage-llm', preload: true }), (e) => {
      assert.ok(e instanceof g.ServerError);
      assert.match(e.message, /could not load the llm component \(.*Qwen3-4B-Q4_0\.gguf\): the file is missing or is not a model file/);
      assert.match(e.message, /unknown format/);
      assert.equal(e.details.component, 'llm');
      return true;
    });
  });

  test('sd-server that never finishes loading: startupTimeout per spawn, and nothing left behind', async () => {
    process.env.FAKE_SD_HANG = 'load';
    try {
      const t0 = Date.now();
      const info = await start({ startupTimeout: 300 });
      assert.ok(Date.now() - t0 < 300 || info.backend.state === 'absent', 'start() does not wait for sd-server');
      await assert.rejects(server.generateImage({ prompt: 'x', steps: 1 }), (e) => {
        assert.ok(e instanceof g.ServerError);
        assert.equal(e.details.code, 'SD_SERVER_READY_TIMEOUT');
        assert.equal(e.details.timeoutMs, 300);
        assert.equal(typeof e.details.pid, 'number');
        assert.match(e.details.suggestion, /startupTimeout/);
        return true;
      });
      assert.equal(server.getStatus(), 'running');
      assert.deepEqual(h.processesMatching(env.root), []);
      await server.stop();
      // The older name is an alias; with preload the deadline bounds start() itself.
      await assert.rejects(start({ startTimeoutMs: 300, preload: true }), (e) => e.details.code === 'SD_SERVER_READY_TIMEOUT');
      assert.equal(server.getStatus(), 'stopped');
    } finally {
      delete process.env.FAKE_SD_HANG;
    }
  });

  test('an SDXL split with a diffusers-named UNet is refused before spawning', async () => {
    const log = h.argsLog(env.tmp);
    await assert.rejects(start({ modelId: 'sdxl-diffusers' }), (e) => e instanceof g.ServerError && /diffusers-named UNet/.test(e.message) && e.details.code === 'UNSUPPORTED_LAYOUT');
    assert.deepEqual(log.all(), []);
  });
});

describe('generateImage', () => {
  test('Flux 2 Klein: PNG, seed, size, monotonic progress ending at 100', async () => {
    await start();
    const calls = [];
    const r = await server.generateImage({
      prompt: 'a cat',
      width: 128,
      height: 64,
      steps: 6,
      seed: 1234,
      onProgress: (...a) => calls.push(a),
    });
    assert.equal(r.format, 'png');
    assert.deepEqual(h.pngSize(r.image), { width: 128, height: 64 });
    assert.equal(r.width, 128);
    assert.equal(r.height, 64);
    assert.equal(r.seed, 1234);
    assert.ok(r.timeTaken >= 0);
    assert.equal(r.images, undefined);
    assert.ok(calls.length >= 3, JSON.stringify(calls));
    const pcts = calls.map((c) => c[3]);
    for (let i = 1; i < pcts.length; i++) assert.ok(pcts[i] >= pcts[i - 1], `monotonic: ${pcts}`);
    assert.equal(pcts[pcts.length - 1], 100);
    assert.ok(pcts.slice(0, -1).every((p) => p < 100), '100 only at the end');
    const stages = calls.map((c) => c[2]);
    assert.ok(stages.includes('diffusion') && stages[stages.length - 1] === 'decoding');
    assert.ok(calls.some((c) => c[2] === 'diffusion' && c[0] === 6 && c[1] === 6), 'the last step is reported');
    assert.equal(server.getActiveGenerationId(), undefined);
  });

  test('progress replayed from a real sd-server run (loading passes, real timing) never goes down', async () => {
    h.replayRealRun();
    try {
      await start();
      const calls = [];
      await server.generateImage({ prompt: 'replayed', width: 64, height: 64, onProgress: (...a) => calls.push(a) });
      // The diffusion weights' loading pass (280 tensors) starts after the text encoder's pass
      // reached the top of the loading band: it was seen, and did not pull the percentage down.
      assert.ok(calls.some((c) => c[2] === 'loading' && c[1] === 280), JSON.stringify(calls));
      const pcts = calls.map((c) => c[3]);
      for (let i = 1; i < pcts.length; i++) assert.ok(pcts[i] >= pcts[i - 1], `monotonic: ${pcts}`);
      assert.equal(pcts[pcts.length - 1], 100);
    } finally {
      h.replayRealRun(false);
    }
  });

  test('the model stays loaded: one sd-server for several images', async () => {
    const log = h.argsLog(env.tmp);
    await start();
    await server.generateImage({ prompt: 'image 0', steps: 1 });
    const pid = server.getPid();
    for (let i = 1; i < 3; i++) await server.generateImage({ prompt: `image ${i}`, steps: 1 });
    assert.equal(log.all().length, 1);
    assert.equal(server.getPid(), pid);
  });

  test('count gives a batch with consecutive seeds', async () => {
    await start();
    const r = await server.generateImage({ prompt: 'three', count: 3, seed: 10, steps: 2, width: 64, height: 64 });
    assert.equal(r.images.length, 3);
    assert.deepEqual(r.images.map((i) => i.seed), [10, 11, 12]);
    for (const img of r.images) assert.deepEqual(h.pngSize(img.image), { width: 64, height: 64 });
    assert.equal(r.seed, 10);
  });

  test('a throwing onProgress does not break the generation', async () => {
    await start();
    const r = await server.generateImage({ prompt: 'x', steps: 2, onProgress: () => { throw new Error('listener bug'); } });
    assert.ok(h.pngSize(r.image));
  });

  test('invalid requests are refused without reaching sd.cpp', async () => {
    await start();
    await assert.rejects(server.generateImage({ prompt: '' }), /Missing required field: prompt/);
    await assert.rejects(server.generateImage({ prompt: 'x', steps: 'many' }), /steps must be an integer/);
    await assert.rejects(server.generateImage({ prompt: 'x', sampler: 'fastest' }), /sampler must be one of/);
    await assert.rejects(server.generateImage({ prompt: 'x', count: 9 }), /count must be between 1 and 5/);
  });

  test('not running is a ServerError', async () => {
    await assert.rejects(server.generateImage({ prompt: 'x' }), (e) => e instanceof g.ServerError && e.message === 'Server error: Server is not running');
  });

  test('SDXL split really generates (the hint makes sd.cpp detect SDXL)', async () => {
    await start({ modelId: 'sdxl-split' });
    const r = await server.generateImage({ prompt: 'a castle', width: 64, height: 64, steps: 1 });
    assert.deepEqual(h.pngSize(r.image), { width: 64, height: 64 });
    const logs = await server.getLogs(500);
    assert.ok(logs.some((l) => l.includes('Version: SDXL')), 'sd.cpp detected SDXL');
  });

  test('cli backend: same API, one process per image', async () => {
    const log = h.argsLog(env.tmp);
    const info = await start({ backend: 'cli' });
    assert.equal(info.backendKind, 'cli');
    assert.deepEqual(info.backend, { state: 'absent' });
    const a = await server.generateImage({ prompt: 'one', steps: 2, seed: 3, width: 64, height: 64 });
    const b = await server.generateImage({ prompt: 'two', steps: 2 });
    assert.deepEqual(h.pngSize(a.image), { width: 64, height: 64 });
    assert.equal(a.seed, 3);
    assert.ok(h.pngSize(b.image));
    assert.equal(log.all().length, 2);
  });

  test('stop with a job running cancels it and leaves no process', async () => {
    process.env.FAKE_SD_STEP_MS = '200';
    try {
      await start();
      const busy = nextEvent(server, 'backend-status', (e) => e.state === 'busy');
      const p = server.generateImage({ prompt: 'slow', steps: 50 });
      const rejected = assert.rejects(p, (e) => e.message === 'Image generation cancelled' && e.code === 'GENERATION_CANCELLED');
      await busy;
      const pid = server.getPid();
      await server.stop();
      await rejected;
      assert.equal(h.processAlive(pid), false);
      assert.deepEqual(h.processesMatching(env.root), []);
    } finally {
      process.env.FAKE_SD_STEP_MS = '2';
    }
  });
});

describe('crash while idle', () => {
  test('an sd-server killed from outside: backend absent (crashed), server running, respawned by the next image', async () => {
    await start();
    await server.generateImage({ prompt: 'spawn', steps: 1 });
    const pid = server.getPid();
    const crashed = once(server, 'crashed');
    const status = nextEvent(server, 'backend-status', (e) => e.reason === 'crashed');
    process.kill(pid, 'SIGKILL');
    const [c] = await crashed;
    assert.equal(c.signal, 'SIGKILL');
    assert.equal(c.code, null);
    assert.equal(c.exitCode, 137);
    assert.match(c.message, /SIGKILL/);
    assert.deepEqual(await status, { state: 'absent', previous: 'ready', reason: 'crashed', exit: { code: null, signal: 'SIGKILL' } });
    assert.equal(server.getStatus(), 'running');
    assert.equal(await server.isHealthy(), true);
    assert.equal(server.getPid(), undefined);
    const r = await server.generateImage({ prompt: 'back again', steps: 1 });
    assert.ok(h.pngSize(r.image));
    assert.notEqual(server.getPid(), pid);
    assert.equal(server.getStatus(), 'running');
  });
});

describe('logs', () => {
  test('written to <userData>/logs/diffusion-server.log in the contract format', async () => {
    await start();
    await server.generateImage({ prompt: 'logged', steps: 1 });
    const file = server.getLogPath();
    assert.equal(file, path.join(env.root, 'logs', 'diffusion-server.log'));
    const lines = await server.getLogs(1000);
    assert.ok(lines.length > 5);
    for (const l of lines) assert.match(l, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] \[(INFO |WARN |ERROR|DEBUG)\] /);
    assert.equal((await server.getLogs(2)).length, 2);
    const structured = await server.getStructuredLogs(3);
    assert.equal(structured.length, 3);
    assert.ok(['info', 'warn', 'error', 'debug'].includes(structured[0].level));
    await server.clearLogs();
    assert.deepEqual(await server.getLogs(), []);
  });
});
