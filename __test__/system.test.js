'use strict';
const { test, describe, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const g = require('..');
const { GIB, tempDir, writeMachine } = require('./helpers/system.js');

const { systemInfo, SystemInfo, FileSystemError } = g;
const SIM = 'GENAI_ELECTRON_SIMULATE_SYSTEM';

function within(actual, expected, fraction) {
  return Math.abs(actual - expected) <= expected * fraction;
}

function assertBytes(value, label) {
  assert.equal(typeof value, 'number', `${label} is a number`);
  assert.ok(Number.isSafeInteger(value) && value >= 0, `${label} = ${value} is a whole number of bytes`);
}

let dir;
let machineFile;
beforeEach(() => {
  dir = tempDir();
  machineFile = path.join(dir, 'machine.json');
  delete process.env[SIM];
  systemInfo.clearCache();
});
afterEach(() => {
  delete process.env[SIM];
  systemInfo.clearCache();
});

describe('this machine', () => {
  // Runs only where a GPU is present; elsewhere it is reported as skipped (counted in the summary).
  test('[hardware: GPU] detect() reports the GPU in contract shapes', async (t) => {
    const caps = await systemInfo.detect();
    if (!caps.gpu.available) {
      t.skip('no GPU on this machine');
      return;
    }
    assert.ok(['nvidia', 'amd', 'apple', 'intel'].includes(caps.gpu.type));
    assert.equal(typeof caps.gpu.name, 'string');
    assert.ok(caps.gpu.name.length > 0);
    if (caps.gpu.type === 'nvidia') assertBytes(caps.gpu.vram, 'gpu.vram');
    if (caps.gpu.vramAvailable !== undefined) assert.ok(caps.gpu.vramAvailable <= caps.gpu.vram);
    assert.ok(Array.isArray(caps.gpu.devices) && caps.gpu.devices.length >= 1);
  });

  test('the singleton is exported as systemInfo and SystemInfo.getInstance()', () => {
    assert.ok(systemInfo instanceof SystemInfo);
    assert.equal(SystemInfo.getInstance(), systemInfo);
  });

  test('detect() reports CPU, memory, GPU and recommendations in contract shapes and bytes', async () => {
    const before = Date.now();
    const caps = await systemInfo.detect();
    assert.deepEqual(Object.keys(caps).sort(), ['cpu', 'detectedAt', 'gpu', 'memory', 'platform', 'recommendations']);

    assert.equal(caps.cpu.cores, os.cpus().length);
    assert.equal(caps.cpu.architecture, os.arch());
    assert.equal(typeof caps.cpu.model, 'string');
    assert.ok(caps.cpu.model.length > 0);

    for (const k of ['total', 'available', 'used']) assertBytes(caps.memory[k], `memory.${k}`);
    assert.ok(within(caps.memory.total, os.totalmem(), 0.01), `${caps.memory.total} vs os.totalmem() ${os.totalmem()}`);
    assert.ok(caps.memory.available > 0 && caps.memory.available <= caps.memory.total);
    assert.equal(caps.memory.used, caps.memory.total - caps.memory.available);

    assert.equal(typeof caps.gpu.available, 'boolean');
    // CI has no GPU, no NVML and no nvidia-smi: a clean "no GPU", not an error. A machine with a
    // GPU is checked by the hardware test below.
    if (!caps.gpu.available) assert.deepEqual(caps.gpu, { available: false });

    assert.equal(caps.platform, process.platform);
    const at = Date.parse(caps.detectedAt);
    assert.equal(new Date(at).toISOString(), caps.detectedAt);
    assert.ok(at >= before - 1000 && at <= Date.now() + 1000);

    const r = caps.recommendations;
    assert.ok(['7B', '13B', '34B', '70B'].includes(r.maxModelSize));
    assert.ok(r.recommendedQuantization.length >= 2 && r.recommendedQuantization.every((q) => /^Q\d/.test(q)));
    assert.ok(Number.isInteger(r.threads) && r.threads >= 1 && r.threads <= caps.cpu.cores);
    assert.equal(r.gpuAcceleration, caps.gpu.available);
    assert.equal(r.gpuLayers, caps.gpu.available ? undefined : 0);
    assert.equal(JSON.stringify(caps).includes('simulated'), false);
  });

  test('getMemoryInfo() is a synchronous live reading in bytes', () => {
    const m = systemInfo.getMemoryInfo();
    assert.equal(typeof m.then, 'undefined');
    assert.deepEqual(Object.keys(m).sort(), ['available', 'total', 'used']);
    for (const k of ['total', 'available', 'used']) assertBytes(m[k], k);
    assert.ok(within(m.total, os.totalmem(), 0.01));
    assert.equal(m.used, m.total - m.available);
    // Same source as os.freemem() on Linux (MemAvailable); allow for other processes' churn.
    if (process.platform === 'linux') assert.ok(Math.abs(m.available - os.freemem()) < 0.1 * m.total);
  });

  test('getGPUInfo() answers without throwing and agrees with detect()', async () => {
    const gpu = await systemInfo.getGPUInfo();
    const caps = await systemInfo.detect(true);
    assert.equal(gpu.available, caps.gpu.available);
    assert.equal(gpu.name, caps.gpu.name);
    assert.equal(gpu.vram, caps.gpu.vram);
    await assert.rejects(systemInfo.getGPUInfo({ timeoutMs: -1 }), TypeError);
  });

  test('detect() is cached: the same reading until forceRefresh or clearCache()', async () => {
    const a = await systemInfo.detect();
    const b = await systemInfo.detect();
    assert.deepEqual(b, a);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const c = await systemInfo.detect(true);
    assert.ok(Date.parse(c.detectedAt) > Date.parse(a.detectedAt), `${c.detectedAt} after ${a.detectedAt}`);
    assert.deepEqual(await systemInfo.detect(), c);
    await new Promise((resolve) => setTimeout(resolve, 5));
    systemInfo.clearCache();
    const d = await systemInfo.detect();
    assert.ok(Date.parse(d.detectedAt) > Date.parse(c.detectedAt));
  });

  test('canRunModel() against this machine', async () => {
    const total = os.totalmem();
    const huge = await systemInfo.canRunModel({ id: 'huge', type: 'llm', size: total }, { checkTotalMemory: true });
    assert.equal(huge.possible, false);
    assert.match(huge.reason, /^Insufficient RAM: model requires \d+\.\dGB, but only \d+\.\dGB total$/);
    assert.equal(huge.suggestion, 'This model is too large for your system. Try a smaller model or quantization.');
    const tiny = await systemInfo.canRunModel({ id: 'tiny', type: 'llm', size: 1024 });
    assert.deepEqual(tiny, { possible: true });
  });
});

describe('caching observed through a simulated machine', () => {
  test('detect() keeps serving the cached machine; the live getters and forceRefresh see the new one', async () => {
    process.env[SIM] = machineFile;
    writeMachine(machineFile, { ramGiB: 16, vramGiB: 8 });
    const first = await systemInfo.detect();
    assert.equal(first.gpu.vram, 8 * GIB);

    writeMachine(machineFile, { ramGiB: 32, vramGiB: 24 });
    assert.deepEqual(await systemInfo.detect(), first, 'cached within 60 s');
    assert.equal(systemInfo.getMemoryInfo().total, 32 * GIB, 'getMemoryInfo is uncached');
    assert.equal((await systemInfo.getGPUInfo()).vram, 24 * GIB, 'getGPUInfo is uncached');

    const forced = await systemInfo.detect(true);
    assert.equal(forced.gpu.vram, 24 * GIB);
    assert.equal(forced.memory.total, 32 * GIB);
    assert.deepEqual(await systemInfo.detect(), forced);

    writeMachine(machineFile, { ramGiB: 64, vramGiB: null });
    systemInfo.clearCache();
    const cleared = await systemInfo.detect();
    assert.equal(cleared.gpu.available, false);
    assert.equal(cleared.memory.total, 64 * GIB);
  });

  test('switching the simulation on or off is never served from the cache', async () => {
    const real = await systemInfo.detect();
    assert.equal(real.simulated, undefined);
    process.env[SIM] = machineFile;
    writeMachine(machineFile, { ramGiB: 16, vramGiB: 12 });
    const sim = await systemInfo.detect();
    assert.equal(sim.simulated, true);
    assert.equal(sim.gpu.vram, 12 * GIB);
    delete process.env[SIM];
    assert.equal((await systemInfo.detect()).simulated, undefined);
  });

  test('concurrent detect() calls agree', async () => {
    process.env[SIM] = machineFile;
    writeMachine(machineFile, { ramGiB: 16, vramGiB: 8 });
    const all = await Promise.all([1, 2, 3, 4].map(() => systemInfo.detect(true)));
    for (const c of all) assert.equal(c.gpu.vram, 8 * GIB);
  });
});

describe('simulated machines', () => {
  const cases = [
    { vramGiB: 8, ramGiB: 16, maxModelSize: '13B', name: 'NVIDIA GeForce RTX 3070' },
    { vramGiB: 12, ramGiB: 32, maxModelSize: '34B', name: 'NVIDIA GeForce RTX 4070' },
    { vramGiB: 24, ramGiB: 64, maxModelSize: '70B', name: 'NVIDIA GeForce RTX 4090' },
    { vramGiB: null, ramGiB: 8, maxModelSize: '7B' },
  ];
  for (const c of cases) {
    test(`${c.vramGiB === null ? 'no GPU' : `${c.vramGiB} GB GPU`} with ${c.ramGiB} GB RAM`, async () => {
      process.env[SIM] = machineFile;
      writeMachine(machineFile, c);
      const gpu = await systemInfo.getGPUInfo();
      const mem = systemInfo.getMemoryInfo();
      const caps = await systemInfo.detect();

      assert.deepEqual(mem, { total: c.ramGiB * GIB, available: (c.ramGiB / 2) * GIB, used: (c.ramGiB / 2) * GIB, simulated: true });
      assert.deepEqual(caps.memory, mem);
      if (c.vramGiB === null) {
        assert.deepEqual(gpu, { available: false, simulated: true });
      } else {
        assert.deepEqual(gpu, {
          available: true,
          type: 'nvidia',
          name: c.name,
          vram: c.vramGiB * GIB,
          vramAvailable: (c.vramGiB - 1) * GIB,
          cuda: true,
          devices: [{ index: 0, name: c.name, vram: c.vramGiB * GIB, vramAvailable: (c.vramGiB - 1) * GIB }],
          source: 'simulated',
          simulated: true,
        });
      }
      assert.deepEqual(caps.gpu, gpu);
      assert.equal(caps.simulated, true);
      assert.equal(caps.recommendations.maxModelSize, c.maxModelSize);
      assert.equal(caps.recommendations.gpuAcceleration, c.vramGiB !== null);
      // Without a cpu section the real CPU is reported, and not marked simulated.
      assert.equal(caps.cpu.cores, os.cpus().length);
      assert.equal(caps.cpu.simulated, undefined);
    });
  }

  test('an Apple machine gets the unified-memory estimate', async () => {
    process.env[SIM] = machineFile;
    fs.writeFileSync(
      machineFile,
      JSON.stringify({
        simulated: true,
        memory: { total: 32 * GIB, available: 20 * GIB },
        gpu: { available: true, type: 'apple', name: 'Apple M2 Max' },
      }),
    );
    const gpu = await systemInfo.getGPUInfo();
    assert.equal(gpu.vram, Math.floor(32 * GIB * 0.7));
    assert.equal(gpu.vramAvailable, undefined);
    assert.equal(gpu.metal, true);
    assert.equal(gpu.simulated, true);
    assert.equal((await systemInfo.detect()).recommendations.maxModelSize, '34B');
  });

  test('multi-GPU, AMD and a simulated CPU', async () => {
    process.env[SIM] = machineFile;
    fs.writeFileSync(
      machineFile,
      JSON.stringify({
        simulated: true,
        memory: { total: 64 * GIB, available: 60 * GIB },
        gpu: {
          available: true,
          type: 'amd',
          devices: [
            { name: 'Radeon RX 7600', vram: 8 * GIB, vramAvailable: 7 * GIB },
            { name: 'Radeon RX 7900 XTX', vram: 24 * GIB, vramAvailable: 23 * GIB },
          ],
        },
        cpu: { cores: 24, model: 'Simulated Threadripper', architecture: 'x64' },
      }),
    );
    const caps = await systemInfo.detect();
    assert.equal(caps.gpu.name, 'Radeon RX 7900 XTX');
    assert.equal(caps.gpu.vram, 24 * GIB);
    assert.equal(caps.gpu.rocm, true);
    assert.deepEqual(caps.gpu.devices.map((d) => d.index), [0, 1]);
    assert.deepEqual(caps.cpu, { cores: 24, model: 'Simulated Threadripper', architecture: 'x64', simulated: true });
    assert.equal(caps.recommendations.threads, 20);
  });

  describe('canRunModel verdicts', () => {
    // Hand-built ModelInfo records as genai-electron stores them.
    const sdxl = {
      id: 'sdxl-turbo',
      name: 'SDXL Turbo',
      type: 'diffusion',
      size: 6.5 * GIB,
      path: '/models/diffusion/sdxl-turbo.safetensors',
      downloadedAt: '2026-02-20T08:00:00.000Z',
      source: { type: 'url', url: 'https://example.com/sdxl-turbo.safetensors' },
    };
    const flux = {
      id: 'flux-2-klein-q80',
      name: 'Flux 2 Klein Q8_0',
      type: 'diffusion',
      size: 13 * GIB,
      path: '/models/diffusion/flux-2-klein/dit.gguf',
      downloadedAt: '2026-02-20T08:00:00.000Z',
      source: { type: 'huggingface', url: 'https://huggingface.co/o/r/resolve/main/dit.gguf' },
      components: {
        diffusion_model: { path: '/models/diffusion/flux-2-klein/dit.gguf', size: 8 * GIB },
        llm: { path: '/models/diffusion/flux-2-klein/qwen3.gguf', size: 4.5 * GIB },
        vae: { path: '/models/diffusion/flux-2-klein/vae.safetensors', size: 0.5 * GIB },
      },
      ggufMetadata: { architecture: 'flux', raw: { tokens: new Array(1000).fill('t') } },
    };

    async function verdict(machine, model, options) {
      process.env[SIM] = machineFile;
      writeMachine(machineFile, machine);
      systemInfo.clearCache();
      return systemInfo.canRunModel(model, options);
    }

    test('a single-file model against total and available RAM', async () => {
      const box = { ramGiB: 16, availableGiB: 7, vramGiB: 8 };
      assert.deepEqual(await verdict(box, sdxl, { checkTotalMemory: true }), { possible: true, simulated: true });
      assert.deepEqual(await verdict(box, sdxl), {
        possible: false,
        reason: 'Insufficient RAM: model requires 7.8GB, but only 7.0GB available',
        suggestion: 'Try closing other applications or using a smaller quantization (Q4_K_M instead of Q8_0)',
        simulated: true,
      });
    });

    test('a multi-component model is judged by its aggregate size', async () => {
      // 13 GiB × 1.2 = 15.6 GiB: fits 16 GiB total, not 8 GiB available, not 12 GiB total.
      const r = await verdict({ ramGiB: 16, vramGiB: 12 }, flux, { checkTotalMemory: true });
      assert.deepEqual(r, { possible: true, simulated: true });
      const small = await verdict({ ramGiB: 12, vramGiB: 12 }, flux, { checkTotalMemory: true });
      assert.deepEqual(small, {
        possible: false,
        reason: 'Insufficient RAM: model requires 15.6GB, but only 12.0GB total',
        suggestion: 'This model is too large for your system. Try a smaller model or quantization.',
        simulated: true,
      });
      const avail = await verdict({ ramGiB: 16, vramGiB: 12 }, flux);
      assert.equal(avail.reason, 'Insufficient RAM: model requires 15.6GB, but only 8.0GB available');
      // A record without `size` is sized by its components.
      const { size, ...noSize } = flux;
      assert.equal(size, 13 * GIB);
      assert.equal((await verdict({ ramGiB: 12, vramGiB: 12 }, noSize, { checkTotalMemory: true })).reason, small.reason);
    });

    test('over 8 GiB without a GPU runs with an advisory', async () => {
      const r = await verdict({ ramGiB: 32, vramGiB: null }, flux, { checkTotalMemory: true });
      assert.deepEqual(r, {
        possible: true,
        reason: 'Model will run on CPU only, which may be slow for this size',
        suggestion: 'Consider using a GPU for better performance with large models',
        simulated: true,
      });
      assert.deepEqual(await verdict({ ramGiB: 32, vramGiB: null }, sdxl, { checkTotalMemory: true }), {
        possible: true,
        simulated: true,
      });
    });

    test('GPU layers leave only the CPU share for RAM', async () => {
      const llm = { id: 'llm', type: 'llm', size: 10 * GIB, ggufMetadata: { block_count: 48 } };
      const box = { ramGiB: 16, availableGiB: 3, vramGiB: 24 };
      assert.equal((await verdict(box, llm)).possible, false);
      // 12 GiB × 8/48 = 2 GiB.
      assert.deepEqual(await verdict(box, llm, { gpuLayers: 40 }), { possible: true, simulated: true });
      assert.equal(
        (await verdict(box, llm, { gpuLayers: 20, totalLayers: 48 })).reason,
        'Insufficient RAM: model requires 7.0GB, but only 3.0GB available',
      );
    });

    test('bad arguments are TypeErrors', async () => {
      await assert.rejects(systemInfo.canRunModel(undefined), TypeError);
      await assert.rejects(systemInfo.canRunModel({ id: 'x' }), /modelInfo.size must be a number of bytes/);
      await assert.rejects(systemInfo.canRunModel({ size: 'big' }), TypeError);
      await assert.rejects(systemInfo.canRunModel({ size: 1 }, { checkTotalMemory: 'yes' }), TypeError);
      await assert.rejects(systemInfo.canRunModel({ size: 1 }, { gpuLayers: 'all' }), TypeError);
    });
  });
});

describe('simulation files that must be refused', () => {
  const good = { simulated: true, memory: { total: 16 * GIB, available: 8 * GIB }, gpu: { available: false } };
  const bad = {
    'no marker': JSON.stringify({ memory: good.memory, gpu: good.gpu }),
    'a false marker': JSON.stringify({ ...good, simulated: false }),
    'a string marker': JSON.stringify({ ...good, simulated: 'true' }),
    'broken JSON': '{ "simulated": true, ',
    'a misspelt field': JSON.stringify({ ...good, gpu: { available: true, type: 'nvidia', vram: 8 * GIB, vramAvailible: GIB } }),
    'GB instead of bytes': JSON.stringify({ ...good, memory: { total: 16, available: 8 } }),
    'no gpu section': JSON.stringify({ simulated: true, memory: good.memory }),
  };
  for (const [what, text] of Object.entries(bad)) {
    test(`a file with ${what} makes every call throw`, async () => {
      fs.writeFileSync(machineFile, text);
      process.env[SIM] = machineFile;
      const check = (err) => {
        assert.ok(err instanceof FileSystemError, `${err}`);
        assert.equal(err.code, 'FILE_SYSTEM_ERROR');
        assert.equal(err.details.code, 'SIMULATED_SYSTEM_INVALID');
        assert.equal(err.details.path, machineFile);
        assert.match(err.message, /GENAI_ELECTRON_SIMULATE_SYSTEM/);
        return true;
      };
      await assert.rejects(systemInfo.detect(), check);
      await assert.rejects(systemInfo.detect(true), check);
      assert.throws(() => systemInfo.getMemoryInfo(), check);
      await assert.rejects(systemInfo.getGPUInfo(), check);
      await assert.rejects(systemInfo.canRunModel({ size: GIB }), check);
    });
  }

  test('a missing file is refused; an empty variable means no simulation', async () => {
    process.env[SIM] = path.join(dir, 'absent.json');
    await assert.rejects(systemInfo.detect(), (e) => e instanceof FileSystemError && /cannot read/.test(e.message));
    process.env[SIM] = '  ';
    assert.equal((await systemInfo.detect()).simulated, undefined);
  });

  test('a relative path is resolved against the working directory', async () => {
    writeMachine(machineFile, { ramGiB: 16, vramGiB: 8 });
    process.env[SIM] = path.relative(process.cwd(), machineFile);
    assert.equal((await systemInfo.getGPUInfo()).vram, 8 * GIB);
  });
});
