'use strict';
/**
 * GPU detection without NVML, as on CI: fake `nvidia-smi` / `rocm-smi` programs first on PATH
 * prove that the fallbacks are wired end to end. Runs in its own process (node --test gives each
 * file one), because the first detection decides how NVML is loaded for the process: pointing
 * GENAI_ELECTRON_NVML_LIBRARY at a missing file makes even a GPU machine take the fallbacks here.
 */
const { test, describe, before } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { MIB, tempDir, fakeTool } = require('./helpers/system.js');

process.env.GENAI_ELECTRON_NVML_LIBRARY = path.join(tempDir(), 'absent', 'libnvidia-ml.so.1');
delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
const { systemInfo } = require('..');

const NVIDIA_ARGS = '--query-gpu=name,memory.total,memory.free --format=csv,noheader';
const ROCM_ARGS = '--showproductname --showmeminfo vram --json';
const realPath = process.env.PATH;

let bin;
/** Puts only `bin` (and, unless `alone`, the real PATH after it) on PATH. */
function usePath({ alone = false } = {}) {
  process.env.PATH = alone ? bin : `${bin}${path.delimiter}${realPath}`;
}

describe('GPU fallbacks when NVML cannot be loaded', { skip: process.platform === 'win32' && 'needs sh scripts' }, () => {
  before(() => {
    bin = tempDir('genai-rs-fake-bin-');
  });

  test('nvidia-smi CSV: every GPU is listed and the one with most VRAM is reported', async () => {
    // The fake refuses any other arguments, so the query itself is checked too.
    fakeTool(
      bin,
      'nvidia-smi',
      `[ "$*" = "${NVIDIA_ARGS}" ] || { echo "unexpected args: $*" >&2; exit 2; }
echo 'NVIDIA GeForce RTX 3070, 8192 MiB, 7000 MiB'
echo 'NVIDIA GeForce RTX 4090, 24564 MiB, 20480 MiB'`,
    );
    usePath();
    const gpu = await systemInfo.getGPUInfo();
    assert.deepEqual(gpu, {
      available: true,
      type: 'nvidia',
      name: 'NVIDIA GeForce RTX 4090',
      vram: 24564 * MIB,
      vramAvailable: 20480 * MIB,
      cuda: true,
      devices: [
        { index: 0, name: 'NVIDIA GeForce RTX 3070', vram: 8192 * MIB, vramAvailable: 7000 * MIB },
        { index: 1, name: 'NVIDIA GeForce RTX 4090', vram: 24564 * MIB, vramAvailable: 20480 * MIB },
      ],
      source: 'nvidia-smi',
    });
    const caps = await systemInfo.detect(true);
    assert.deepEqual(caps.gpu, gpu);
    // 24564 MiB is just under 24 GiB: genai-electron's tiers put a 4090 in the 34B class too.
    assert.equal(caps.recommendations.maxModelSize, '34B');
    assert.equal(caps.recommendations.gpuAcceleration, true);
  });

  test('a failing nvidia-smi moves on to rocm-smi', async () => {
    fakeTool(bin, 'nvidia-smi', "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit 9");
    fakeTool(
      bin,
      'rocm-smi',
      `[ "$*" = "${ROCM_ARGS}" ] || exit 2
echo '{"card0": {"Card Series": "Radeon RX 7900 XTX", "VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "753026560"}}'`,
    );
    usePath();
    const gpu = await systemInfo.getGPUInfo();
    assert.equal(gpu.type, 'amd');
    assert.equal(gpu.source, 'rocm-smi');
    assert.equal(gpu.name, 'Radeon RX 7900 XTX');
    assert.equal(gpu.vram, 25753026560);
    assert.equal(gpu.vramAvailable, 25000000000);
    assert.equal(gpu.rocm, true);
    assert.equal(gpu.cuda, undefined);
  });

  test('a hanging nvidia-smi is killed at the deadline and detection goes on', async () => {
    fakeTool(bin, 'nvidia-smi', 'sleep 30');
    usePath();
    const started = Date.now();
    const gpu = await systemInfo.getGPUInfo({ timeoutMs: 300 });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.equal(gpu.source, 'rocm-smi');
  });

  test('with no NVML and no tools the answer is a clean "no GPU" (or a sysfs GPU), never an error', async () => {
    const empty = tempDir('genai-rs-empty-bin-');
    process.env.PATH = empty;
    const gpu = await systemInfo.getGPUInfo();
    const caps = await systemInfo.detect(true);
    process.env.PATH = realPath;
    for (const g of [gpu, caps.gpu]) {
      assert.ok(!['nvml', 'nvidia-smi', 'rocm-smi'].includes(g.source), JSON.stringify(g));
      if (!g.available) assert.deepEqual(g, { available: false });
    }
    assert.equal(caps.recommendations.gpuAcceleration, caps.gpu.available);
  });

  test('canRunModel and detect keep working on the fallback path', async () => {
    fakeTool(bin, 'nvidia-smi', `echo 'NVIDIA GeForce RTX 3060, 12288 MiB, 12000 MiB'`);
    usePath({ alone: true });
    systemInfo.clearCache();
    const r = await systemInfo.canRunModel({ id: 'big', type: 'diffusion', size: 9 * 1024 ** 3 }, { checkTotalMemory: true });
    process.env.PATH = realPath;
    // With a GPU detected there is no CPU-only advisory, whatever the RAM verdict.
    assert.notEqual(r.reason, 'Model will run on CPU only, which may be slow for this size');
    assert.equal(r.simulated, undefined);
  });
});

describe('bench/gpu-check.mjs', { skip: process.platform === 'win32' && 'needs sh scripts' }, () => {
  const { spawnSync } = require('node:child_process');
  const script = path.join(__dirname, '..', 'bench', 'gpu-check.mjs');

  function check(toolBody, extraArgs = []) {
    const dirOfTools = tempDir('genai-rs-check-bin-');
    if (toolBody !== null) fakeTool(dirOfTools, 'nvidia-smi', toolBody);
    return spawnSync(process.execPath, [script, ...extraArgs], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, PATH: `${dirOfTools}${path.delimiter}${path.dirname(process.execPath)}` },
    });
  }

  test('exits 0 with a clear message without nvidia-smi', () => {
    const r = check(null);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /no NVIDIA GPU \/ nvidia-smi not found/);
  });

  test('agreeing readings pass; --require-nvml fails on the nvidia-smi fallback', () => {
    const tool = `echo 'NVIDIA GeForce RTX 3070, 8192 MiB, 7000 MiB'; echo 'NVIDIA GeForce RTX 4090, 24564 MiB, 20480 MiB'`;
    const ok = check(tool);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /agree: 2 GPU\(s\)/);
    const strict = check(tool, ['--require-nvml']);
    assert.equal(strict.status, 1, strict.stdout);
    assert.match(strict.stdout, /not NVML/);
  });

  test('readings that differ by more than 5% fail', () => {
    // Each call reports 10% less free memory than the one before.
    const state = path.join(tempDir(), 'calls');
    const tool = `n=$(cat '${state}' 2>/dev/null || echo 0); echo $((n + 1)) > '${state}'
echo "NVIDIA GeForce RTX 4090, 24564 MiB, $((20000 - n * 2500)) MiB"`;
    const r = check(tool);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /DISAGREE[\s\S]*free VRAM/);
  });
});
