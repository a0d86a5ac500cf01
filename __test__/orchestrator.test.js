'use strict';
/**
 * ResourceOrchestrator with the real llamaServer (fake llama-server), the real systemInfo on
 * simulated machines and a small stand-in for the diffusion side (the calls 0.26's orchestrator
 * makes: getConfig, executeImageGeneration, resolveUsageMode, settleResidency, releaseBackend,
 * getBackendInfo, isCalibrating).
 */
const { test, before, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const g = require('..');
const h = require('./helpers/llama.js');
const { writeMachine } = require('./helpers/system.js');
const { writeRecord } = require('./helpers/storage.js');

const GIB = 1024 ** 3;
let env;
let llama;

/** The diffusion side as 0.26's orchestrator sees it; records every call. */
function standInDiffusion({ modelId = 'big-image', state = 'idle', usageMode } = {}) {
  const calls = [];
  return {
    calls,
    state,
    getConfig: () => ({ modelId, usageMode }),
    async executeImageGeneration(config) {
      calls.push(['execute', config.prompt, llama.getStatus()]);
      if (config.prompt === 'fail') throw new Error('generation failed');
      return { image: Buffer.from('png'), seed: 1 };
    },
    async executeBatchGeneration(config) {
      calls.push(['batch', config.count, llama.getStatus()]);
      return { images: [] };
    },
    resolveUsageMode(requestMode, offloaded) {
      if (requestMode === 'burst' || requestMode === 'single') return requestMode;
      if (usageMode === 'burst' || usageMode === 'single') return usageMode;
      return offloaded ? 'single' : 'burst';
    },
    async settleResidency(mode) {
      calls.push(['settle', mode]);
    },
    async releaseBackend(options) {
      calls.push(['release', options]);
      this.state = 'idle';
    },
    getBackendInfo() {
      return { state: this.state };
    },
    isCalibrating: () => false,
  };
}

function imageRecord(id, size) {
  writeRecord(env.root, { id, name: id, type: 'diffusion', size, path: path.join(env.root, `${id}.gguf`), downloadedAt: '2026-08-01T10:00:00.000Z', source: { type: 'url', url: 'https://example.invalid/x' } });
}

function machine(opts) {
  writeMachine(env.machine, opts);
  g.systemInfo.clearCache();
}

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = env.machine;
  process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR = env.binaryDir;
  delete process.env.FAKE_LLAMA_MODE;
  // An 8B-class LLM record (4.9 GB, 32 layers) backed by a tiny GGUF the fake can load.
  h.llmRecord(env.root, { id: 'llm-8b', size: 4.9 * GIB, gguf: { architecture: 'llama', block_count: 32, context_length: 8192, attention_head_count: 32, attention_head_count_kv: 8, embedding_length: 4096 } });
  imageRecord('big-image', 7 * GIB);
  imageRecord('small-image', 1 * GIB);
});

beforeEach(() => {
  llama = new g.LlamaServerManager();
});

afterEach(async () => {
  await llama.stop();
});

const llmConfig = { modelId: 'llm-8b', port: 'auto', gpuLayers: 32, contextSize: 4096, occupancyCheck: 'off' };

test('an image that needs the room: LLM stopped, image generated, LLM back with the same config', async () => {
  machine({ ramGiB: 32, vramGiB: 12 });
  const diffusion = standInDiffusion();
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, diffusion, g.modelManager);
  const first = await llama.start(llmConfig);
  const config = llama.getConfig();
  // 4.9 × 1.2 GiB + KV of the LLM and 7 × 1.2 GiB of the image exceed 75 % of 12 GiB.
  assert.equal(await orch.wouldNeedOffload(), true);
  const result = await orch.orchestrateImageGeneration({ prompt: 'a cat' });
  assert.deepEqual(result.image, Buffer.from('png'));
  assert.deepEqual(diffusion.calls[0], ['execute', 'a cat', 'stopped']);
  // 'auto' became 'single' because the LLM was offloaded.
  assert.deepEqual(diffusion.calls[1], ['settle', 'single']);
  await orch.waitForReload();
  assert.equal(llama.getStatus(), 'running');
  assert.notEqual(llama.getPid(), first.pid);
  assert.deepEqual(llama.getConfig(), config);
  assert.equal(orch.getSavedState(), undefined);
});

test('an image that fits: the LLM is untouched', async () => {
  machine({ ramGiB: 64, vramGiB: 24 });
  const diffusion = standInDiffusion({ modelId: 'small-image' });
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, diffusion, g.modelManager);
  const first = await llama.start(llmConfig);
  assert.equal(await orch.wouldNeedOffload(), false);
  await orch.orchestrateImageGeneration({ prompt: 'a dog' });
  assert.deepEqual(diffusion.calls[0], ['execute', 'a dog', 'running']);
  assert.deepEqual(diffusion.calls[1], ['settle', 'burst']);
  assert.equal(llama.getPid(), first.pid);
  assert.equal(orch.getSavedState(), undefined);
});

test('no GPU: the 75 % rule uses available RAM', async () => {
  machine({ ramGiB: 16, availableGiB: 12, vramGiB: null });
  const diffusion = standInDiffusion();
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, diffusion, g.modelManager);
  await llama.start({ ...llmConfig, gpuLayers: 0 });
  assert.equal(await orch.wouldNeedOffload(), true);
  machine({ ramGiB: 64, availableGiB: 60, vramGiB: null });
  assert.equal(await orch.wouldNeedOffload(), false);
});

test('burst usage keeps the LLM off until the backend is released, then reloads it', async () => {
  machine({ ramGiB: 32, vramGiB: 12 });
  const diffusion = standInDiffusion();
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, diffusion, g.modelManager);
  await llama.start(llmConfig);
  await orch.orchestrateImageGeneration({ prompt: 'a cat', usageMode: 'burst' });
  assert.equal(llama.getStatus(), 'stopped');
  const saved = orch.getSavedState();
  assert.equal(saved.wasRunning, true);
  assert.equal(saved.config.modelId, 'llm-8b');
  assert.ok(saved.savedAt instanceof Date);
  orch.onDiffusionBackendReleased('llm-start'); // not a reload reason
  assert.equal(orch.pendingReload, null);
  orch.onDiffusionBackendReleased('idle-timeout');
  await orch.waitForReload();
  assert.equal(llama.getStatus(), 'running');
  assert.equal(orch.getSavedState(), undefined);
});

test('a failed image still brings the LLM back', async () => {
  machine({ ramGiB: 32, vramGiB: 12 });
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, standInDiffusion(), g.modelManager);
  await llama.start(llmConfig);
  await assert.rejects(orch.orchestrateImageGeneration({ prompt: 'fail' }), /generation failed/);
  await orch.waitForReload();
  assert.equal(llama.getStatus(), 'running');
});

test('an LLM start while the diffusion backend is warm releases it (llm-start) when both would not fit', async () => {
  machine({ ramGiB: 32, vramGiB: 12 });
  const diffusion = standInDiffusion({ state: 'ready' });
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, diffusion, g.modelManager);
  llama.registerPreStartHook((ctx) => orch.prepareForLLMStart(ctx));
  await llama.start(llmConfig);
  assert.deepEqual(diffusion.calls, [['release', { reason: 'llm-start', waitForInFlight: true }]]);
  await llama.stop();
  // Room for both: the backend stays.
  machine({ ramGiB: 64, vramGiB: 24 });
  const small = standInDiffusion({ modelId: 'small-image', state: 'ready' });
  const orch2 = new g.ResourceOrchestrator(g.systemInfo, llama, small, g.modelManager);
  const llama2 = new g.LlamaServerManager();
  llama2.registerPreStartHook((ctx) => orch2.prepareForLLMStart(ctx));
  await llama2.start(llmConfig);
  await llama2.stop();
  assert.deepEqual(small.calls, []);
});

test('clearSavedState forgets the LLM; offloadLLM/reloadLLM directly', async () => {
  machine({ ramGiB: 32, vramGiB: 12 });
  const orch = new g.ResourceOrchestrator(g.systemInfo, llama, standInDiffusion(), g.modelManager);
  await llama.start(llmConfig);
  await orch.offloadLLM();
  assert.equal(llama.getStatus(), 'stopped');
  orch.clearSavedState();
  await orch.reloadLLM();
  assert.equal(llama.getStatus(), 'stopped');
  await llama.start(llmConfig);
  await orch.offloadLLM();
  await orch.reloadLLM();
  assert.equal(llama.getStatus(), 'running');
});
