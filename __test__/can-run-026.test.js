'use strict';
/**
 * canRunModel against genai-electron 0.26 itself on simulated machines: for every record ×
 * options × machine below, the verdict, reason and suggestion are the same. Theirs sees the
 * machine through its own `detect()` / `getMemoryInfo()` replaced on the instance; ours through a
 * simulated machine file.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const g = require('..');
const { reference } = require('./helpers/reference.js');
const { tempDir, writeMachine, GIB } = require('./helpers/system.js');

const MACHINES = [
  { ramGiB: 16, availableGiB: 8, vramGiB: null },
  { ramGiB: 64, availableGiB: 40, vramGiB: 24 },
  { ramGiB: 32, availableGiB: 6, vramGiB: 8 },
  { ramGiB: 8, availableGiB: 3, vramGiB: 4 },
];

const llama = (size, meta = {}) => ({
  id: 'm',
  name: 'm',
  type: 'llm',
  size,
  path: '/m.gguf',
  downloadedAt: '',
  source: { type: 'url', url: 'http://127.0.0.1/m.gguf' },
  ggufMetadata: meta,
});
const LLAMA_8B = { architecture: 'llama', block_count: 32, attention_head_count: 32, attention_head_count_kv: 8, embedding_length: 4096 };
const MODELS = [
  { id: 'sd', name: 'sd', type: 'diffusion', size: 7 * GIB, path: '/sd', downloadedAt: '', source: { type: 'url', url: 'http://127.0.0.1/sd' } },
  llama(4.6 * GIB, LLAMA_8B),
  llama(9 * GIB, {}),
  llama(40 * GIB, { ...LLAMA_8B, block_count: 80, attention_head_count: 64, embedding_length: 8192 }),
  llama(5 * GIB, { architecture: 'gemma3', block_count: 26, attention_head_count: [8, 8], attention_head_count_kv: [4, 4], attention_key_length: 256 }),
  llama(17 * GIB, { architecture: 'qwen3moe', block_count: 48, attention_head_count: 32, attention_head_count_kv: 4, embedding_length: 2048, expert_count: 128, expert_weights_bytes: 15 * GIB }),
  llama(60 * GIB, { architecture: 'qwen3moe', block_count: 94, embedding_length: 4096, raw: { 'qwen3moe.expert_count': 128, 'qwen3moe.expert_feed_forward_length': 1536, 'general.parameter_count': 235e9 } }),
];
const OPTIONS = [
  undefined,
  { checkTotalMemory: true },
  { gpuLayers: 20 },
  { gpuLayers: 99, totalLayers: 32 },
  { contextSize: 8192, gpuLayers: 32 },
  { contextSize: 32768, gpuLayers: 16, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' },
  { contextSize: 4096, gpuLayers: 0, checkTotalMemory: true },
  { contextSize: 8192, gpuLayers: 999, cpuMoe: true },
  { contextSize: 8192, gpuLayers: 48, nCpuMoe: 10 },
  { contextSize: 4096, gpuLayers: 48, overrideTensors: 'exps=CPU' },
  { contextSize: 4096, gpuLayers: 24, overrideTensors: 'blk\\.0\\.=CPU' },
];

test('canRunModel verdicts, reasons and suggestions equal genai-electron 0.26 on simulated machines', async (t) => {
  const dir = tempDir('genai-rs-canrun-');
  const machines = MACHINES.map((m, i) => writeMachine(path.join(dir, `m${i}.json`), m));
  const theirs = await reference(`
    const si = ge.systemInfo;
    const out = [];
    for (const m of ${JSON.stringify(machines)}) {
      const memory = { ...m.memory, used: m.memory.total - m.memory.available };
      si.getMemoryInfo = () => memory;
      si.detect = async () => ({ memory, gpu: m.gpu, cpu: { cores: 8, model: 'x', architecture: 'x64' }, platform: 'linux' });
      for (const model of ${JSON.stringify(MODELS)})
        for (const o of ${JSON.stringify(OPTIONS)}) out.push(await si.canRunModel(model, o ?? undefined));
    }
    return out;`);
  t.after(() => {
    delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
    g.systemInfo.clearCache();
  });
  const ours = [];
  for (let i = 0; i < machines.length; i++) {
    process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = path.join(dir, `m${i}.json`);
    g.systemInfo.clearCache();
    for (const model of MODELS) {
      for (const o of OPTIONS) {
        const { simulated, ...verdict } = await g.systemInfo.canRunModel(model, o);
        assert.equal(simulated, true);
        ours.push(verdict);
      }
    }
  }
  let k = 0;
  for (const m of MACHINES) {
    for (const model of MODELS) {
      for (const o of OPTIONS) {
        assert.deepEqual(ours[k], theirs[k], `machine ${JSON.stringify(m)}, model ${model.size / GIB} GiB ${JSON.stringify(model.ggufMetadata)}, options ${JSON.stringify(o)}`);
        k += 1;
      }
    }
  }
  // The matrix exercises every rule: each branch's verdict appears.
  const reasons = new Set(ours.map((r) => (r.reason || 'fits').split(':')[0]));
  for (const r of ['fits', 'Insufficient RAM', 'Insufficient VRAM', 'Insufficient RAM for MoE expert weights', 'Insufficient RAM for CPU-resident MoE experts', 'Resolved configuration requires GPU offload, but no usable GPU VRAM is available', 'Model will run on CPU only, which may be slow for this size']) {
    assert.ok(reasons.has(r), `no case gives "${r}" (got ${[...reasons].join(' / ')})`);
  }
});
