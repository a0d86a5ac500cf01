'use strict';
/**
 * Both servers together, end to end with the fake llama-server and the fake sd-server: the
 * resource orchestrator of a diffusion manager wired to an LLM manager (as 0.26's singletons
 * are), and attachAppLifecycle stopping both on `before-quit` with no process left.
 */
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const g = require('..');
const hl = require('./helpers/llama.js');
const hd = require('./helpers/diffusion.js');

let root;
let sd;
const machines = {};
const GIB = 1024 ** 3;
// An 8B-class chat model fully on the GPU: with Klein (about 7.1 GB) it needs more than 75 % of
// 12 GB, and fits in 24 GB.
const llmConfig = { modelId: 'chat-8b', port: 'auto', gpuLayers: 32, contextSize: 4096, occupancyCheck: 'off' };

function onMachine(name) {
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = machines[name];
  g.systemInfo.clearCache();
}

before(() => {
  sd = hd.setup();
  root = sd.root;
  g.configure({ userDataPath: root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = hd.machine(sd.tmp, 24, { ramGiB: 64 });
  process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR = hl.FAKE_LLAMA_DIR;
  process.env.FAKE_SD_STEP_MS = '2';
  hl.llmRecord(root, { id: 'chat-llm' });
  hl.llmRecord(root, { id: 'chat-8b', size: 4.9 * GIB, gguf: { architecture: 'llama', block_count: 32, context_length: 8192, attention_head_count: 32, attention_head_count_kv: 8, embedding_length: 4096 } });
  hd.kleinRecord(root);
  machines.gpu12 = hd.machine(sd.tmp, 12, { ramGiB: 32 });
  machines.gpu24 = hd.machine(sd.tmp, 24, { ramGiB: 64 });
});

const isPng = (buf) => Buffer.isBuffer(buf) && buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

async function pair() {
  const llama = new g.LlamaServerManager();
  const diffusion = new g.DiffusionServerManager(undefined, undefined, llama);
  await diffusion.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: sd.binaryPath });
  return { llama, diffusion };
}

async function stopBoth({ llama, diffusion }) {
  // A reload still in flight would start the LLM again after the stop below.
  await diffusion.getOrchestrator()?.waitForReload();
  await diffusion.stop();
  await llama.stop();
}

test('an image that needs the room: the LLM is stopped, the image generated, the LLM back with the same config', async () => {
  onMachine('gpu12');
  const p = await pair();
  try {
    const first = await p.llama.start(llmConfig);
    const config = p.llama.getConfig();
    assert.ok(p.diffusion.getOrchestrator(), '0.26 wiring: the manager has an orchestrator');
    assert.equal(await p.diffusion.getOrchestrator().wouldNeedOffload(), true);
    const seen = new Set();
    const result = await p.diffusion.generateImage({ prompt: 'a lighthouse', width: 64, height: 64, steps: 2, onProgress: () => seen.add(p.llama.getStatus()) });
    assert.ok(isPng(result.image));
    assert.deepEqual([...seen], ['stopped'], 'the LLM was off while the image was made');
    assert.equal(hl.processAlive(first.pid), false);
    await p.diffusion.getOrchestrator().waitForReload();
    assert.equal(p.llama.getStatus(), 'running');
    assert.deepEqual(p.llama.getConfig(), config);
    assert.equal(p.diffusion.getOrchestrator().getSavedState(), undefined);
  } finally {
    await stopBoth(p);
  }
});

test('an image submitted over the HTTP API goes through the orchestrator too: LLM off while it runs, then back', async () => {
  onMachine('gpu12');
  const p = await pair();
  try {
    const first = await p.llama.start(llmConfig);
    const config = p.llama.getConfig();
    const statuses = [];
    p.llama.on('status', (st) => statuses.push(st));
    const port = p.diffusion.getInfo().port;
    const posted = await hd.http(port, 'POST', '/v1/images/generations', { prompt: 'a lighthouse', width: 64, height: 64, steps: 2 });
    assert.equal(posted.status, 201, posted.text);
    const seen = await hd.pollUntil(port, posted.json.id, hd.terminal);
    const last = seen[seen.length - 1];
    assert.equal(last.json.status, 'complete', last.text);
    assert.ok(isPng(Buffer.from(last.json.result.images[0].image, 'base64')));
    assert.equal(hl.processAlive(first.pid), false, 'the LLM was stopped for the image');
    assert.equal(statuses[0], 'stopping');
    // The reload follows the image (fire and forget, as in 0.26); the poller may see 'complete' first.
    if (p.llama.getStatus() !== 'running') await hd.nextEvent(p.llama, 'started');
    await p.diffusion.getOrchestrator().waitForReload();
    assert.equal(p.llama.getStatus(), 'running');
    assert.deepEqual(p.llama.getConfig(), config);
    // 'auto' became 'single' because the LLM was offloaded: sd-server's memory was given back.
    assert.equal(p.diffusion.getBackendInfo().state, 'absent');
  } finally {
    await stopBoth(p);
  }
});

test('an HTTP image that fits runs with the LLM untouched, and settles as burst', async () => {
  onMachine('gpu24');
  const p = await pair();
  try {
    const first = await p.llama.start(llmConfig);
    const port = p.diffusion.getInfo().port;
    const posted = await hd.http(port, 'POST', '/v1/images/generations', { prompt: 'a lighthouse', width: 64, height: 64, steps: 1 });
    assert.equal(posted.status, 201, posted.text);
    const seen = await hd.pollUntil(port, posted.json.id, hd.terminal);
    assert.equal(seen[seen.length - 1].json.status, 'complete');
    assert.equal(p.llama.getPid(), first.pid);
    assert.equal(p.diffusion.getBackendInfo().state, 'ready', 'burst keeps sd-server loaded');
  } finally {
    await stopBoth(p);
  }
});

test('an image that fits: the LLM is untouched', async () => {
  onMachine('gpu24');
  const p = await pair();
  try {
    const first = await p.llama.start(llmConfig);
    assert.equal(await p.diffusion.getOrchestrator().wouldNeedOffload(), false);
    const seen = new Set();
    const result = await p.diffusion.generateImage({ prompt: 'a lighthouse', width: 64, height: 64, steps: 2, onProgress: () => seen.add(p.llama.getStatus()) });
    assert.ok(isPng(result.image));
    assert.deepEqual([...seen], ['running']);
    assert.equal(p.llama.getPid(), first.pid);
  } finally {
    await stopBoth(p);
  }
});

test("an LLM start while the diffusion backend is warm releases it ('llm-start')", async () => {
  onMachine('gpu12');
  const p = await pair();
  try {
    // No LLM yet: the image runs directly and burst usage keeps sd-server loaded.
    await p.diffusion.generateImage({ prompt: 'warm up', width: 64, height: 64, steps: 1, usageMode: 'burst' });
    assert.equal(p.diffusion.getBackendInfo().state, 'ready');
    const events = [];
    p.diffusion.on('backend-status', (e) => events.push(e));
    await p.llama.start(llmConfig);
    const release = events.find((e) => e.reason === 'llm-start');
    assert.ok(release, `backend-status events: ${JSON.stringify(events)}`);
    assert.notEqual(p.diffusion.getBackendInfo().state, 'ready');
    assert.equal(p.llama.getStatus(), 'running');
  } finally {
    await stopBoth(p);
  }
});

function fakeApp() {
  const app = new EventEmitter();
  app.exited = new Promise((resolve) => {
    app.exit = resolve;
  });
  return app;
}

test('attachAppLifecycle stops the LLM and the diffusion server on before-quit, leaving no process', async () => {
  const llama = new g.LlamaServerManager();
  const diffusion = new g.DiffusionServerManager();
  const app = fakeApp();
  g.attachAppLifecycle(app, { llamaServer: llama, diffusionServer: diffusion });
  const llm = await llama.start({ modelId: 'chat-llm', port: 'auto', occupancyCheck: 'off' });
  await diffusion.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: sd.binaryPath });
  await diffusion.generateImage({ prompt: 'warm up', width: 64, height: 64, steps: 1 });
  assert.ok(hd.processesMatching(root).length >= 2, 'both servers run');
  const event = { prevented: 0, preventDefault() { this.prevented += 1; } };
  app.emit('before-quit', event);
  assert.equal(event.prevented, 1);
  assert.equal(await app.exited, 0);
  assert.equal(llama.getStatus(), 'stopped');
  assert.equal(diffusion.getStatus(), 'stopped');
  assert.equal(hl.processAlive(llm.pid), false);
  assert.deepEqual(hd.processesMatching(root), []);
});
