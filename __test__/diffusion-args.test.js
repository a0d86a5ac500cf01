'use strict';
/**
 * The exact sd-server / sd-cli command lines for single-file, SDXL split (with its hint-file
 * workaround) and Flux 2 Klein records, with and without each flag, on simulated 8 / 12 / 24 GB
 * machines (plan phase 5). The fake programs log their argv (FAKE_SD_LOG_ARGS).
 */
const { test, describe, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const g = require('..');
const h = require('./helpers/diffusion.js');

const server = new g.DiffusionServerManager();
let env;
let log;

before(() => {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.FAKE_SD_STEP_MS = '1';
});

after(async () => {
  await server.stop();
  delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
});

beforeEach(() => {
  log = h.argsLog(env.tmp);
});

function onMachine(vram) {
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, vram);
}

/**
 * Starts, generates one image (sd-server is spawned for the first image), returns sd-server's argv
 * without the trailing `--listen-ip/--listen-port`, stops. `seen.result` holds the image.
 */
const seen = {};
async function serverArgs(config) {
  const spawned = log.all().length;
  await server.start({ port: 'auto', binaryPath: env.binaryPath, ...config });
  try {
    assert.equal(log.all().length, spawned, 'start() spawns nothing');
    seen.result = await server.generateImage({ prompt: 'args', steps: 1, width: 64, height: 64 });
    const argv = log.last();
    assert.ok(argv, 'sd-server was spawned');
    const n = argv.length;
    assert.deepEqual(argv.slice(n - 4, n - 1), ['--listen-ip', '127.0.0.1', '--listen-port']);
    const port = Number(argv[n - 1]);
    assert.ok(port > 0 && port !== server.getPort(), 'a private port, not the public one');
    return argv.slice(0, n - 4);
  } finally {
    await server.stop();
  }
}

const klein = () => {
  const d = path.join(env.root, 'models', 'diffusion', 'flux-2-klein');
  return ['--diffusion-model', `${d}/flux-2-klein-4b-Q8_0.gguf`, '--llm', `${d}/Qwen3-4B-Q4_0.gguf`, '--vae', `${d}/flux2-vae.safetensors`];
};

const sdxl = () => {
  const d = path.join(env.root, 'models', 'diffusion', 'sdxl-split');
  return [
    '-m',
    path.join(env.root, 'config', 'sdxl-hint.safetensors'),
    '--diffusion-model',
    `${d}/sdxl_unet.safetensors`,
    '--clip_l',
    `${d}/clip_l.safetensors`,
    '--clip_g',
    `${d}/clip_g.safetensors`,
    '--vae',
    `${d}/sdxl_vae.safetensors`,
  ];
};

describe('Flux 2 Klein (~7.1 GB) on simulated machines', () => {
  before(() => h.kleinRecord(env.root));

  test('8 GB: everything offloaded, flash attention', async () => {
    onMachine(8);
    assert.deepEqual(await serverArgs({ modelId: 'flux-2-klein' }), [
      ...klein(),
      '--clip-on-cpu',
      '--vae-on-cpu',
      '--offload-to-cpu',
      '--diffusion-fa',
    ]);
  });

  test('12 GB: text encoder on CPU, no offload', async () => {
    onMachine(12);
    assert.deepEqual(await serverArgs({ modelId: 'flux-2-klein' }), [...klein(), '--clip-on-cpu', '--diffusion-fa']);
  });

  test('24 GB: all resident', async () => {
    onMachine(24);
    assert.deepEqual(await serverArgs({ modelId: 'flux-2-klein' }), [...klein(), '--diffusion-fa']);
  });

  test('no GPU: text encoder on CPU only', async () => {
    onMachine(null);
    assert.deepEqual(await serverArgs({ modelId: 'flux-2-klein' }), [...klein(), '--clip-on-cpu', '--diffusion-fa']);
  });

  test('explicit false beats auto on 8 GB', async () => {
    onMachine(8);
    const argv = await serverArgs({
      modelId: 'flux-2-klein',
      clipOnCpu: false,
      vaeOnCpu: false,
      offloadToCpu: false,
      diffusionFlashAttention: false,
    });
    assert.deepEqual(argv, klein());
  });

  test('explicit true beats auto on 24 GB, one flag at a time', async () => {
    onMachine(24);
    for (const [field, flag] of [
      ['clipOnCpu', '--clip-on-cpu'],
      ['vaeOnCpu', '--vae-on-cpu'],
      ['offloadToCpu', '--offload-to-cpu'],
    ]) {
      const argv = await serverArgs({ modelId: 'flux-2-klein', [field]: true });
      assert.deepEqual(argv, [...klein(), flag, '--diffusion-fa'], field);
    }
  });

  test('threads and batchSize', async () => {
    onMachine(24);
    const argv = await serverArgs({ modelId: 'flux-2-klein', threads: 6, batchSize: 2, diffusionFlashAttention: false });
    // batchSize is no flag: each job asks for batch_count = batchSize, the first image is the result.
    assert.deepEqual(argv, [...klein(), '-t', '6']);
    assert.ok((await server.getLogs(500)).some((l) => l.includes('generating image: 2/2')), 'sd-server made a batch of 2');
    assert.equal(seen.result.images, undefined);
    // threads: 0 means "not given", as in genai-electron.
    assert.deepEqual(await serverArgs({ modelId: 'flux-2-klein', threads: 0, diffusionFlashAttention: false }), klein());
  });

  test('the decision is logged and reported', async () => {
    onMachine(12);
    const info = await server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath });
    await server.stop();
    assert.deepEqual(info.flags, { clipOnCpu: true, vaeOnCpu: false, offloadToCpu: false, diffusionFlashAttention: true });
    const logs = await server.getLogs(200);
    assert.ok(
      logs.some((l) => l.includes('Optimization flags: clipOnCpu=true (auto), vaeOnCpu=false (auto), offloadToCpu=false (auto)')),
      logs.join('\n'),
    );
  });
});

describe('SDXL split (~6.9 GB) with the hint file', () => {
  before(() => h.sdxlSplitRecord(env.root));

  test('8 GB: hint first, then the components in canonical order', async () => {
    onMachine(8);
    assert.deepEqual(await serverArgs({ modelId: 'sdxl-split' }), [
      ...sdxl(),
      '--clip-on-cpu',
      '--vae-on-cpu',
      '--offload-to-cpu',
    ]);
  });

  test('12 GB: no offload (plan phase 5)', async () => {
    onMachine(12);
    assert.deepEqual(await serverArgs({ modelId: 'sdxl-split' }), [...sdxl(), '--clip-on-cpu']);
  });

  test('24 GB: nothing', async () => {
    onMachine(24);
    assert.deepEqual(await serverArgs({ modelId: 'sdxl-split' }), sdxl());
  });

  test('the hint file is the 98-byte safetensors of sdxl-split.md', () => {
    const fs = require('node:fs');
    const hint = fs.readFileSync(path.join(env.root, 'config', 'sdxl-hint.safetensors'));
    assert.equal(hint.length, 98);
    const header = JSON.parse(hint.subarray(8, 8 + Number(hint.readBigUInt64LE(0))).toString());
    assert.deepEqual(header, { 'cond_stage_model.1.sdxl_hint': { dtype: 'F16', shape: [1], data_offsets: [0, 2] } });
  });
});

describe('single-file checkpoint', () => {
  before(() => h.sdxlCheckpointRecord(env.root));

  test('-m <file> on 12 GB', async () => {
    onMachine(12);
    const file = path.join(env.root, 'models', 'diffusion', 'sdxl-base', 'sd_xl_base_1.0.safetensors');
    assert.deepEqual(await serverArgs({ modelId: 'sdxl-base' }), ['-m', file, '--clip-on-cpu']);
  });
});

describe('cli backend: one sd-cli per image', () => {
  test('generation values, flags, batch count and -o', async () => {
    onMachine(8);
    await server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath, backend: 'cli', threads: 2 });
    try {
      assert.equal(log.all().length, 0, 'nothing spawned at start');
      const r = await server.generateImage({
        prompt: 'a red fox',
        negativePrompt: 'blurry',
        width: 64,
        height: 64,
        steps: 2,
        cfgScale: 1,
        seed: 42,
        sampler: 'euler',
        count: 2,
      });
      assert.equal(r.images.length, 2);
      const argv = log.last();
      const out = argv[argv.length - 1];
      assert.match(out, new RegExp(`^${env.root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/temp/sd-output-gen_\\d+_[0-9a-z]{9}\\.png$`));
      assert.deepEqual(argv, [
        ...klein(),
        '-p',
        'a red fox',
        '-n',
        'blurry',
        '-W',
        '64',
        '-H',
        '64',
        '--steps',
        '2',
        '--cfg-scale',
        '1',
        '-s',
        '42',
        '--sampling-method',
        'euler',
        '-t',
        '2',
        '--clip-on-cpu',
        '--vae-on-cpu',
        '--offload-to-cpu',
        '--diffusion-fa',
        '-b',
        '2',
        '-o',
        out,
      ]);
      const fs = require('node:fs');
      assert.deepEqual(fs.readdirSync(path.join(env.root, 'temp')), [], 'outputs are deleted after reading');
    } finally {
      await server.stop();
    }
  });
});
