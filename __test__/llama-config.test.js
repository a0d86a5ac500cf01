'use strict';
/**
 * LlamaServerConfig -> llama-server arguments, and systemInfo.getOptimalConfig, against
 * genai-electron 0.26 itself (dev dependency): the same sizing on simulated 8, 12 and 24 GB GPUs
 * and without a GPU, and the same argument list for every config field, as the fake
 * llama-server received it.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { pathToFileURL } = require('node:url');
const g = require('..');
const h = require('./helpers/llama.js');
const { writeMachine, tempDir } = require('./helpers/system.js');

const REGISTER = path.join(__dirname, 'fixtures', 'electron-stub', 'register.mjs');
const DIST = path.join(__dirname, '..', 'node_modules', 'genai-electron', 'dist');
const GIB = 1024 ** 3;

/** Runs `body` (an async function body) in genai-electron 0.26 with `input`; returns its JSON result. */
function genaiElectron(body, input) {
  const code = `
    const { SystemInfo } = await import('genai-electron');
    const { buildLlamaServerArgs, normalizeLlamaVCacheConfig } = await import(${JSON.stringify(pathToFileURL(path.join(DIST, 'process', 'llama-server-args.js')).href)});
    const input = JSON.parse((await import('node:fs')).readFileSync(0, 'utf8'));
    const out = await (async () => { ${body} })();
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--no-warnings', '--import', REGISTER, '--input-type=module', '-e', code], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, STUB_ELECTRON_USER_DATA: tempDir('genai-compat-llama-') },
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, `genai-electron script failed:\n${r.stderr}${r.error || ''}`);
  return JSON.parse(r.stdout);
}

const MACHINES = {
  'gpu-8gb': { ramGiB: 16, vramGiB: 8 },
  'gpu-12gb': { ramGiB: 32, vramGiB: 12 },
  'gpu-24gb': { ramGiB: 64, vramGiB: 24 },
  'no-gpu': { ramGiB: 16, vramGiB: null },
};

const MODELS = {
  // An 8B dense model (Q4_K_M-sized), 128k training context, GQA with 8 KV heads.
  dense8b: { size: 4.9 * GIB, ggufMetadata: { architecture: 'llama', block_count: 32, context_length: 131072, attention_head_count: 32, attention_head_count_kv: 8, embedding_length: 4096 } },
  // A 30B MoE with measured expert bytes (CPU-resident experts are considered).
  moe30b: { size: 18 * GIB, ggufMetadata: { architecture: 'qwen3moe', block_count: 48, context_length: 40960, attention_head_count: 32, attention_head_count_kv: 4, attention_key_length: 128, embedding_length: 2048, expert_count: 128, expert_weights_bytes: 16 * GIB } },
  // A per-layer head-count array (sliding-window models) and no KV head count.
  arrayHeads: { size: 2.2 * GIB, ggufMetadata: { architecture: 'gemma3', block_count: 26, context_length: 32768, attention_head_count: [8, 8, 8, 4], embedding_length: 1152 } },
  // No GGUF metadata: 0.26's size-based fallbacks.
  bare: { size: 4 * GIB },
};

const HINTS = [
  {},
  { contextSize: 8192 },
  { gpuLayers: 10 },
  { parallelRequests: 4 },
  { cacheTypeK: 'q4_0', cacheTypeV: 'q4_0' },
  { flashAttention: false },
  { cpuMoe: true },
  { nCpuMoe: 12 },
  { overrideTensors: 'blk\\..*=CPU' },
  // The context policy (0.26's constrained sizing and its errors).
  { minimumContextSize: 16384 },
  { minimumContextSize: 32768, parallelRequests: 2 },
  { preferredContextSize: 8192, maximumContextSize: 12000 },
  { minimumContextSize: 4096, gpuLayers: 20 },
  { minimumContextSize: 100000 },
  { maximumContextSize: 2048 },
];

let env;
const machineFiles = {};

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR = env.binaryDir;
  process.env.FAKE_LLAMA_ARGS_LOG = env.argsLog;
  for (const [name, m] of Object.entries(MACHINES)) {
    machineFiles[name] = path.join(env.root, `${name}.json`);
    writeMachine(machineFiles[name], { ...m, extra: { cpu: { cores: 12, model: 'Simulated CPU', architecture: 'x64' } } });
  }
});

after(() => {
  delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
  g.systemInfo.clearCache();
});

async function onMachine(name) {
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = machineFiles[name];
  g.systemInfo.clearCache();
  return { caps: await g.systemInfo.detect(true), mem: g.systemInfo.getMemoryInfo() };
}

test('getOptimalConfig matches genai-electron 0.26 on 8/12/24 GB GPUs and without a GPU', async () => {
  const cases = [];
  for (const machine of Object.keys(MACHINES)) {
    const { caps, mem } = await onMachine(machine);
    for (const [model, info] of Object.entries(MODELS)) {
      for (const hints of HINTS) {
        const ours = await g.systemInfo.getOptimalConfig(info, hints).catch((e) => ({ error: e.name, message: e.message, reason: e.details && e.details.reason }));
        cases.push({ machine, model, hints, info, caps, mem, ours: JSON.parse(JSON.stringify(ours)) });
      }
    }
  }
  const theirs = genaiElectron(
    `const out = [];
     for (const c of input) {
       const si = new SystemInfo();
       si.detect = async () => c.caps;
       si.getMemoryInfo = () => c.mem;
       out.push(await si.getOptimalConfig(c.info, c.hints).catch((e) => ({ error: e.name, message: e.message, reason: e.details && e.details.reason })));
     }
     return out;`,
    cases.map(({ info, hints, caps, mem }) => ({ info, hints, caps, mem })),
  );
  let differing = 0;
  const errors = cases.filter((c) => c.ours.error).length;
  assert.ok(errors > 0 && errors < cases.length / 4, `some policies are impossible: ${errors}`);
  cases.forEach((c, i) => {
    assert.deepEqual(c.ours, theirs[i], `${c.machine} / ${c.model} / ${JSON.stringify(c.hints)}`);
    if (JSON.stringify(c.ours) !== JSON.stringify(cases[0].ours)) differing++;
  });
  // The cases exercise the rules (not one answer everywhere): GPU offload, partial, KV quantisation, MoE.
  assert.ok(differing > cases.length / 2);
  const on = (m, model) => cases.find((c) => c.machine === m && c.model === model && Object.keys(c.hints).length === 0).ours;
  assert.equal(on('gpu-24gb', 'dense8b').gpuLayers, 32);
  assert.equal(on('no-gpu', 'dense8b').gpuLayers, 0);
  assert.ok(on('gpu-8gb', 'moe30b').cpuMoe === true || on('gpu-8gb', 'moe30b').gpuLayers < 48);
  assert.equal(on('gpu-12gb', 'dense8b').cacheTypeK, 'q8_0');
});

const CONFIGS = [
  {},
  { contextSize: 2048, gpuLayers: 0, threads: 3, parallelRequests: 2 },
  { jinja: false, host: '127.0.0.1', modelAlias: 'my-model', batchSize: 256, continuousBatching: false, useMmap: false, useMlock: true },
  { flashAttention: true, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', swaFull: true, overrideTensors: 'exps=CPU', cacheRam: 0, cpuMoe: true, nCpuMoe: 2, reasoningFormat: 'auto' },
  { cacheTypeV: 'q4_0' },
  { fit: 'on' },
  { flashAttention: 'auto', contextSize: 512 },
];

test('the argument list for each config field and machine is the one genai-electron 0.26 builds', async () => {
  const runs = [];
  for (const machine of Object.keys(MACHINES)) {
    await onMachine(machine);
    const rec = h.llmRecord(env.root, { id: `dense-${machine}`, size: MODELS.dense8b.size, gguf: MODELS.dense8b.ggufMetadata });
    const configs = machine === 'gpu-12gb' ? CONFIGS : [{}];
    for (const extra of configs) {
      const server = new g.LlamaServerManager();
      const before = h.loggedArgs(env.argsLog).length;
      await server.start({ modelId: rec.id, port: 'auto', occupancyCheck: 'off', ...extra });
      const args = h.loggedArgs(env.argsLog).slice(before);
      assert.equal(args.length, 1);
      runs.push({ machine, extra, config: server.getConfig(), args: args[0], path: rec.path });
      await server.stop();
    }
  }
  const theirs = genaiElectron(
    `return input.map((r) => { const { binaryPath, ...cfg } = r.config; return buildLlamaServerArgs(normalizeLlamaVCacheConfig(cfg), { path: r.path }); });`,
    runs,
  );
  runs.forEach((r, i) => assert.deepEqual(r.args, theirs[i], `${r.machine} ${JSON.stringify(r.extra)}`));
  // Sizing fields came from getOptimalConfig on each machine.
  const bare = (m) => runs.find((r) => r.machine === m && Object.keys(r.extra).length === 0).args;
  const flag = (a, f) => a[a.indexOf(f) + 1];
  assert.equal(flag(bare('gpu-24gb'), '-ngl'), '32');
  assert.equal(flag(bare('no-gpu'), '-ngl'), '0');
  assert.equal(flag(bare('gpu-12gb'), '--cache-type-k'), 'q8_0');
  assert.equal(flag(bare('gpu-12gb'), '-fa'), 'on');
  assert.equal(flag(bare('gpu-8gb'), '--threads'), '10'); // 12 simulated cores - 2
  // fit:'on' leaves context and layers to llama-server.
  const fit = runs.find((r) => r.extra.fit === 'on').args;
  assert.ok(!fit.includes('-c') && !fit.includes('-ngl') && flag(fit, '-fit') === 'on');
  // A quantized V cache forces flash attention on (0.26's normalizeLlamaVCacheConfig).
  assert.equal(flag(runs.find((r) => r.extra.cacheTypeV === 'q4_0').args, '-fa'), 'on');
});
