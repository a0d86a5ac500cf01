'use strict';
/**
 * llamaServer end to end against the fake llama-server: lifecycle with every status and event,
 * readiness only after /health says 200, each load failure's message, crash handling and
 * auto-restart, port in use, stop with a stream in flight, logs, hooks, and no process left.
 */
const { test, describe, before, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const http = require('node:http');
const { once } = require('node:events');
const { spawnSync } = require('node:child_process');
const g = require('..');
const h = require('./helpers/llama.js');

let env;
let server;

function resetFakeEnv() {
  for (const k of Object.keys(process.env)) if (k.startsWith('FAKE_LLAMA_')) delete process.env[k];
  process.env.FAKE_LLAMA_ARGS_LOG = env.argsLog;
}

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = env.machine;
  process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR = env.binaryDir;
  h.llmRecord(env.root);
  h.llmRecord(env.root, { id: 'split-llm', shards: 3 });
  h.llmRecord(env.root, { id: 'not-gguf', content: 'this is not a model at all' });
});

beforeEach(() => {
  resetFakeEnv();
  server = new g.LlamaServerManager();
});

afterEach(async () => {
  await server.stop();
});

const start = (extra = {}) => server.start({ modelId: 'tiny-llm', port: 'auto', occupancyCheck: 'off', ...extra });

describe('lifecycle', () => {
  test('start -> running -> stop: statuses, events, payloads, getters', async () => {
    const events = [];
    for (const e of ['status', 'ready', 'started', 'stopped', 'crashed', 'restarted']) server.on(e, (...a) => events.push([e, ...a]));
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(server.getPort(), 0);
    assert.equal(server.getPid(), undefined);
    assert.equal(await server.getHealthStatus(), 'unknown');
    const info = await start({ contextSize: 512, parallelRequests: 2 });
    assert.equal(info.status, 'running');
    assert.equal(info.modelId, 'tiny-llm');
    assert.ok(info.port > 0 && info.port === server.getPort());
    assert.ok(h.processAlive(info.pid) && info.pid === server.getPid());
    assert.equal(info.configuredContextSize, 512);
    // The fake pads 512 / 2 slots to 256 per slot, as the real server does.
    assert.equal(info.effectiveContextSize, 256);
    assert.equal(info.effectiveParallelRequests, 2);
    assert.ok(info.loadTimeMs > 0);
    assert.ok(!Number.isNaN(Date.parse(info.startedAt)));
    assert.ok(server.isRunning() && !server.isStopped() && !server.isStarting() && !server.isStopping() && !server.hasCrashed());
    assert.equal(await server.isHealthy(), true);
    assert.equal(await server.getHealthStatus(), 'ok');
    assert.equal(server.getConfig().port, info.port);
    assert.equal(server.getConfig().contextSize, 512);
    assert.equal(server.isCalibrating(), false);
    const ready = events.find((e) => e[0] === 'ready')[1];
    assert.deepEqual(ready, {
      serverGeneration: info.serverGeneration,
      modelId: 'tiny-llm',
      port: info.port,
      configuredContextSize: 512,
      effectiveContextSize: 256,
      effectiveParallelRequests: 2,
      startedAt: info.startedAt,
    });
    const chat = await h.request(info.port, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(chat.status, 200);
    assert.equal(JSON.parse(chat.body).object, 'chat.completion');
    await server.stop();
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(server.getPort(), 0);
    assert.equal(h.processAlive(info.pid), false);
    assert.deepEqual(
      events.map((e) => (e[0] === 'status' ? `status:${e[1]}<-${e[2]}` : e[0])),
      ['status:starting<-stopped', 'status:running<-starting', 'ready', 'started', 'status:stopping<-running', 'status:stopped<-stopping', 'stopped'],
    );
    assert.deepEqual(events.find((e) => e[0] === 'stopped').slice(1), [undefined], '0.26 emits stopped with one undefined argument');
  });

  test('restart keeps the config and emits restarted; start while running is refused', async () => {
    const first = await start({ modelAlias: 'my-model' });
    await assert.rejects(start(), { name: 'ServerError', message: /already running/ });
    const restarted = [];
    server.on('restarted', (i) => restarted.push(i));
    const info = await server.restart();
    assert.notEqual(info.pid, first.pid);
    assert.equal(info.port, first.port);
    assert.equal(restarted.length, 1);
    assert.equal(server.getConfig().modelAlias, 'my-model');
    assert.equal(h.processAlive(first.pid), false);
    const models = JSON.parse((await h.request(info.port, 'GET', '/v1/models')).body);
    assert.equal(models.data[0].id, 'my-model');
  });

  test('a sharded GGUF starts from its first shard; a missing shard is refused before spawning', async () => {
    const rec = JSON.parse(fs.readFileSync(path.join(env.root, 'models', 'llm', 'split-llm.json'), 'utf8'));
    await server.start({ modelId: 'split-llm', port: 'auto', occupancyCheck: 'off' });
    const args = h.loggedArgs(env.argsLog).at(-1);
    assert.equal(args[args.indexOf('-m') + 1], rec.shards[0].path);
    await server.stop();
    fs.renameSync(rec.shards[2].path, `${rec.shards[2].path}.away`);
    try {
      const before = h.loggedArgs(env.argsLog).length;
      await assert.rejects(server.start({ modelId: 'split-llm', port: 'auto' }), (e) => e.name === 'ServerError' && e.details.code === 'MODEL_FILES_MISSING' && e.details.missing[0] === rec.shards[2].path);
      assert.equal(h.loggedArgs(env.argsLog).length, before);
      assert.equal(server.getStatus(), 'stopped');
    } finally {
      fs.renameSync(`${rec.shards[2].path}.away`, rec.shards[2].path);
    }
  });

  test('stop during loading leaves nothing and the start reports the cancel', async () => {
    process.env.FAKE_LLAMA_MODE = 'hang-loading';
    // A link with a name of its own, so the process check below sees only this test's server.
    const bin = path.join(fs.mkdtempSync(path.join(env.root, 'hang-')), 'llama-server');
    fs.symlinkSync(env.binaryPath, bin);
    const spawned = h.loggedArgs(env.argsLog).length;
    const starting = start({ binaryPath: bin });
    starting.catch(() => undefined);
    // Wait until the fake is spawned (its argv is logged first thing).
    while (h.loggedArgs(env.argsLog).length === spawned) await new Promise((r) => setTimeout(r, 10));
    await server.stop();
    await assert.rejects(starting, (e) => e.name === 'ServerError' && e.details.startupCancelled === true);
    assert.equal(server.getStatus(), 'stopped');
    const pids = spawnSync('pgrep', ['-f', bin]).stdout.toString().trim();
    assert.equal(pids, '', `no fake llama-server left: ${pids}`);
  });
});

describe('readiness', () => {
  test('running only after /health says 200 (503 while loading)', async () => {
    process.env.FAKE_LLAMA_LOAD_MS = '700';
    const seen = [];
    let port;
    server.on('status', (s) => {
      if (s !== 'starting') return;
      const poll = async () => {
        if (server.getStatus() !== 'starting') return;
        port = port || JSON.parse(JSON.stringify(server.getConfig() || {})).port;
        if (port) {
          try {
            const r = await h.request(port, 'GET', '/health');
            seen.push([r.status, server.getStatus()]);
          } catch {
            // not bound yet
          }
        }
        setTimeout(poll, 25);
      };
      poll();
    });
    const t0 = Date.now();
    const info = await start().catch((e) => {
      throw new Error(`${e.message} ${JSON.stringify(e.details)}`);
    });
    assert.ok(Date.now() - t0 >= 700, 'start waited for the load');
    assert.ok(seen.some(([s]) => s === 503), `a 503 was seen while loading: ${JSON.stringify(seen)}`);
    assert.ok(seen.every(([s, st]) => s !== 503 || st === 'starting'));
    assert.equal((await h.request(info.port, 'GET', '/health')).status, 200);
  });

  test('a server that never finishes loading times out with the last /health answer', async () => {
    process.env.FAKE_LLAMA_MODE = 'hang-loading';
    // Long enough for the fake to bind on a loaded machine: the last answer is its 503.
    await assert.rejects(start({ startupTimeout: 3000 }), (e) => e.name === 'ServerError' && e.details.code === 'STARTUP_TIMEOUT' && /503 Loading model/.test(e.message));
    assert.equal(server.getStatus(), 'stopped');
  });
});

describe('load failures quote llama-server', () => {
  test('missing model file: refused before spawn when the record points nowhere', async () => {
    h.llmRecord(env.root, { id: 'gone' });
    fs.unlinkSync(path.join(env.root, 'models', 'llm', 'gone.gguf'));
    await assert.rejects(server.start({ modelId: 'gone', port: 'auto' }), { name: 'ServerError', message: /Model files missing for gone/ });
  });

  test('not a GGUF: the real invalid-magic line, at once (not after the startup timeout)', async () => {
    const t0 = Date.now();
    await assert.rejects(server.start({ modelId: 'not-gguf', port: 'auto', occupancyCheck: 'off' }), (e) => {
      assert.equal(e.name, 'ServerError');
      assert.equal(e.details.code, 'MODEL_LOAD_FAILED');
      assert.equal(e.details.exitCode, 1);
      assert.match(e.message, /^Server error: llama-server failed to load the model \(code 1\): gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'; llama_model_load: error loading model/);
      return true;
    });
    assert.ok(Date.now() - t0 < 10000);
    assert.equal(server.getStatus(), 'stopped');
    const logs = await server.getLogs(50);
    assert.ok(logs.some((l) => l.includes('[ERROR] gguf_init_from_reader: invalid magic characters')));
  });

  test('out of memory while loading', async () => {
    process.env.FAKE_LLAMA_MODE = 'oom';
    await assert.rejects(start(), (e) => e.details.code === 'MODEL_LOAD_FAILED' && /failed to allocate buffer/.test(e.message));
  });

  test('context creation crash (SIGSEGV) while loading', async () => {
    process.env.FAKE_LLAMA_MODE = 'segv-context';
    await assert.rejects(start(), (e) => e.details.code === 'CRASHED_DURING_STARTUP' && e.details.signal === 'SIGSEGV' && /V cache quantization requires flash_attn/.test(e.message));
  });

  test('a flag this build refuses: the real one-line message', async () => {
    // A stand-in program that refuses its arguments the way an older llama-server does.
    const dir = fs.mkdtempSync(path.join(env.root, 'old-'));
    const bin = path.join(dir, 'llama-server');
    fs.writeFileSync(bin, '#!/bin/sh\necho "error: invalid argument: -fit" >&2\nexit 1\n', { mode: 0o755 });
    await assert.rejects(start({ binaryPath: bin }), (e) => e.details.code === 'INVALID_ARGUMENT' && e.message === 'Server error: llama-server refused its arguments (code 1): error: invalid argument: -fit');
  });

  test('binary missing: BinaryError listing where it looked', async () => {
    await assert.rejects(start({ binaryPath: path.join(env.root, 'nope') }), (e) => e.name === 'BinaryError' && e.message.includes(path.join(env.root, 'nope')));
  });

  test('bad config is refused before anything runs', async () => {
    await assert.rejects(start({ gpuLayers: -2 }), { name: 'ServerError', message: /gpuLayers/ });
    await assert.rejects(start({ ctx: 1 }), { name: 'ServerError', message: /Unknown configuration field: ctx/ });
    await assert.rejects(start({ cacheTypeV: 'q8_0', flashAttention: false }), { name: 'ServerError', message: /requires flash attention/ });
    await assert.rejects(server.start({ modelId: 'nope', port: 'auto' }), { name: 'ModelNotFoundError' });
    assert.equal(server.getStatus(), 'stopped');
  });
});

describe('context policy', () => {
  test("minimum/preferred/maximum size the context as 0.26 does; an impossible minimum is refused before spawning", async () => {
    // The tiny model is trained for 256 tokens: 2 slots hold at most 512.
    await start({ preferredContextSize: 1024, parallelRequests: 2 });
    assert.equal(server.getConfig().contextSize, 512);
    await server.stop();
    const n = h.loggedArgs(env.argsLog).length;
    await assert.rejects(start({ minimumContextSize: 512 }), (e) => e.name === 'ContextConstraintError' && e.details.reason === 'minimum-exceeds-native');
    await assert.rejects(start({ minimumContextSize: 512, maximumContextSize: 256 }), (e) => e.name === 'ContextConstraintError' && e.details.reason === 'minimum-exceeds-maximum');
    assert.equal(h.loggedArgs(env.argsLog).length, n);
    assert.equal(server.getStatus(), 'stopped');
  });

  test('the slots and context llama-server reports are checked after start, as 0.26 does', async () => {
    // The record claims 4096 tokens, the file's header says 256: llama-server caps each slot at 256.
    h.llmRecord(env.root, { id: 'claims-4k', gguf: { architecture: 'llama', block_count: 2, context_length: 4096, embedding_length: 64, attention_head_count: 4, attention_head_count_kv: 4 } });
    const stopped = [];
    server.on('status', (s) => stopped.push(s));
    await assert.rejects(server.start({ modelId: 'claims-4k', port: 'auto', occupancyCheck: 'off', contextSize: 1024, parallelRequests: 1, minimumContextSize: 1024 }), (e) => {
      assert.equal(e.name, 'ContextConstraintError', e.stack);
      assert.equal(e.message, 'Context constraint error: Effective context 256 is below the required minimum 1024');
      assert.deepEqual(
        [e.details.reason, e.details.stage, e.details.effectiveContextSize, e.details.configuredContextSize, e.details.effectiveParallelRequests],
        ['runtime-below-minimum', 'runtime', 256, 1024, 1],
      );
      return true;
    });
    assert.equal(server.getStatus(), 'stopped');
    assert.equal(server.getPid(), undefined);
    // llama-server pads the context to 256: 1000 asked is 1024 served, above a maximum of 1000.
    h.llmRecord(env.root, { id: 'trained-4k', ctx: 4096 });
    await assert.rejects(server.start({ modelId: 'trained-4k', port: 'auto', occupancyCheck: 'off', contextSize: 1000, parallelRequests: 1, maximumContextSize: 1000 }), (e) => {
      assert.equal(e.name, 'ContextConstraintError', e.stack);
      assert.equal(e.details.reason, 'runtime-above-maximum');
      assert.equal(e.details.effectiveContextSize, 1024);
      return true;
    });
    assert.equal(server.getStatus(), 'stopped');
    process.env.FAKE_LLAMA_PROPS_SLOTS = '3';
    await assert.rejects(server.start({ modelId: 'trained-4k', port: 'auto', occupancyCheck: 'off', contextSize: 2048, parallelRequests: 2 }), (e) => {
      assert.equal(e.message, 'Context constraint error: llama-server reported 3 slots, but 2 were configured');
      assert.deepEqual([e.details.reason, e.details.stage, e.details.effectiveParallelRequests], ['runtime-slots-mismatch', 'runtime', 3]);
      return true;
    });
    delete process.env.FAKE_LLAMA_PROPS_SLOTS;
    const info = await server.start({ modelId: 'trained-4k', port: 'auto', occupancyCheck: 'off', contextSize: 1024, parallelRequests: 1, maximumContextSize: 1024 });
    assert.equal(info.status, 'running');
  });
});

describe('port', () => {
  test('a port held by another program is a PortInUseError before spawning', async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = holder.address().port;
    try {
      const n = h.loggedArgs(env.argsLog).length;
      await assert.rejects(start({ port }), { name: 'PortInUseError', message: `Port ${port} is already in use` });
      assert.equal(h.loggedArgs(env.argsLog).length, n);
    } finally {
      holder.close();
    }
  });

  test("a port taken between the check and the bind: llama-server's own bind failure is a PortInUseError", async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    // A wrapper that makes the fake bind the held port (the last --port wins), as if another
    // program took the port after the check.
    const bin = path.join(fs.mkdtempSync(path.join(env.root, 'race-')), 'llama-server');
    fs.writeFileSync(bin, `#!/bin/sh\nexec ${JSON.stringify(env.binaryPath)} "$@" --port ${holder.address().port}\n`, { mode: 0o755 });
    try {
      const t0 = Date.now();
      await assert.rejects(start({ binaryPath: bin }), { name: 'PortInUseError' });
      assert.ok(Date.now() - t0 < 10000);
      assert.equal(server.getStatus(), 'stopped');
      assert.ok((await server.getLogs(20)).some((l) => l.includes("couldn't bind HTTP server socket")));
    } finally {
      holder.close();
    }
  });
});

describe('crashes', () => {
  test('a SIGSEGV while running is a crash with code, signal and stderr tail', async () => {
    process.env.FAKE_LLAMA_MODE = 'crash';
    process.env.FAKE_LLAMA_CRASH_AFTER_MS = '1000';
    const info = await start();
    const [payload] = await once(server, 'crashed');
    assert.equal(payload.code, null);
    assert.equal(payload.signal, 'SIGSEGV');
    assert.match(payload.stderr, /ggml_abort: fake crash/);
    assert.equal(server.getStatus(), 'crashed');
    assert.ok(server.hasCrashed());
    assert.equal(server.getPid(), undefined);
    assert.equal(h.processAlive(info.pid), false);
  });

  test('a non-zero exit while running is a crash; autoRestart brings it back and emits restarted', async () => {
    process.env.FAKE_LLAMA_MODE = 'exit';
    process.env.FAKE_LLAMA_EXIT_CODE = '3';
    process.env.FAKE_LLAMA_CRASH_AFTER_MS = '1000';
    await start({ autoRestart: true, maxRestarts: 1 });
    const [payload] = await once(server, 'crashed');
    assert.equal(payload.code, 3);
    delete process.env.FAKE_LLAMA_MODE;
    const [info] = await once(server, 'restarted');
    assert.equal(info.status, 'running');
    assert.equal(server.getStatus(), 'running');
  });

  test('an exit with code 0 nobody asked for is a stop, not a crash', async () => {
    process.env.FAKE_LLAMA_MODE = 'exit';
    process.env.FAKE_LLAMA_EXIT_CODE = '0';
    process.env.FAKE_LLAMA_CRASH_AFTER_MS = '1000';
    const crashed = [];
    server.on('crashed', (c) => crashed.push(c));
    await start();
    while (server.getStatus() === 'running') await once(server, 'status');
    assert.equal(server.getStatus(), 'stopped');
    assert.deepEqual(crashed, []);
  });
});

describe('stop', () => {
  test('stop with a stream in flight ends the stream and the process within seconds (not the 30 s SSE hold)', async () => {
    process.env.FAKE_LLAMA_TOKEN_MS = '50';
    const info = await start();
    const got = [];
    const req = http.request({ host: '127.0.0.1', port: info.port, method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' } });
    const ended = new Promise((resolve) => {
      req.on('response', (res) => {
        res.on('data', (c) => got.push(c.toString()));
        res.on('end', resolve);
        res.on('error', resolve);
        res.on('aborted', resolve);
        res.on('close', resolve);
      });
      req.on('error', resolve);
    });
    req.end(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000, stream: true }));
    while (got.join('').split('data:').length < 4) await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    await server.stop();
    const took = Date.now() - t0;
    assert.ok(took < 8000, `stop took ${took} ms`);
    assert.equal(h.processAlive(info.pid), false);
    await ended;
    assert.ok(!got.join('').includes('[DONE]'));
    const logs = (await server.getLogs(20)).join('\n');
    assert.match(logs, /Received second interrupt, terminating immediately\./);
  });

  test('stop is idempotent and concurrent stops share one', async () => {
    await start();
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    assert.equal(server.getStatus(), 'stopped');
  });

  test('a host that exits with the server running takes the server with it', () => {
    const script = `
      const g = require(${JSON.stringify(path.join(__dirname, '..'))});
      g.configure({ userDataPath: ${JSON.stringify(env.root)} });
      g.llamaServer.start({ modelId: 'tiny-llm', port: 'auto', occupancyCheck: 'off' }).then((i) => { console.log(i.pid); process.exit(0); });`;
    const r = spawnSync(process.execPath, ['-e', script], { env: process.env, encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0);
    const deadline = Date.now() + 3000;
    while (h.processAlive(pid) && Date.now() < deadline) spawnSync('sleep', ['0.05']);
    assert.equal(h.processAlive(pid), false, 'llama-server was left running');
  });
});

describe('hooks, watchdog and logs', () => {
  test('pre-start hooks run with the config before spawning; a throwing hook refuses the start', async () => {
    const calls = [];
    const off = server.registerPreStartHook(async (ctx) => calls.push(ctx));
    await start({ contextSize: 256 });
    assert.equal(calls.length, 1);
    assert.equal(calls[0].reason, 'start');
    assert.equal(calls[0].config.contextSize, 256);
    await server.stop();
    off();
    server.registerPreStartHook(() => {
      throw new Error('no room');
    });
    await assert.rejects(start(), /no room/);
    assert.equal(server.getStatus(), 'stopped');
  });

  test('the health watchdog emits health-check-ok', async () => {
    await start({ healthCheckInterval: 50 });
    const [info] = await once(server, 'health-check-ok');
    assert.equal(info.status, 'running');
  });

  test('the watchdog kills a server whose /health keeps failing and reports a crash', async () => {
    process.env.FAKE_LLAMA_MODE = 'unhealthy';
    process.env.FAKE_LLAMA_CRASH_AFTER_MS = '1000';
    const failed = [];
    server.on('health-check-failed', (e) => failed.push(e.consecutiveFailures));
    const info = await start({ healthCheckInterval: 50 });
    const [crash] = await once(server, 'crashed');
    assert.deepEqual(failed.slice(0, 3), [1, 2, 3]);
    assert.match(crash.message, /stopped answering \/health/);
    assert.equal(server.getStatus(), 'crashed');
    assert.equal(h.processAlive(info.pid), false);
  });

  test('logs: levels from the real line format, structured entries, clear, path', async () => {
    await start();
    await h.request(server.getPort(), 'POST', '/completion', { prompt: 'Hello', n_predict: 2 });
    const entries = await server.getStructuredLogs(100);
    assert.ok(entries.some((e) => e.level === 'info' && e.message.startsWith('srv  llama_server: listening on http://127.0.0.1:')));
    assert.ok(entries.some((e) => e.level === 'debug' && e.message.startsWith('slot launch_slot_:')));
    assert.equal(server.getLogPath(), path.join(env.root, 'logs', 'llama-server.log'));
    await server.clearLogs();
    assert.deepEqual(await server.getLogs(), []);
    await assert.rejects(server.calibrate({}), (e) => e.name === 'ServerError' && e.details.code === 'NOT_SUPPORTED');
  });
});
