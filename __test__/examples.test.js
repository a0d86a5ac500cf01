'use strict';
/**
 * The runnable examples work end to end: each runs as its own process against the local
 * Hugging Face-like server (HF_ENDPOINT) with tiny model files of the real shapes, and the fake
 * sd-server; the image it saves must be a real PNG.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startHfServer } = require('./fixtures/hf-server.js');
const files = require('./fixtures/fake-sd/lib/model-files.js');
const { tempRoot } = require('./helpers/storage.js');

const ROOT = path.join(__dirname, '..');
const FAKE_SD = path.join(__dirname, 'fixtures', 'fake-sd');
let srv;
let scratch;

function serve(repo, file, write, opts) {
  const p = write(path.join(scratch, repo.replace('/', '_'), path.basename(file)), opts);
  srv.addFile(repo, file, fs.readFileSync(p));
}

before(async () => {
  srv = await startHfServer();
  scratch = tempRoot('genai-examples-src-');
  serve('leejet/FLUX.2-klein-4B-GGUF', 'flux-2-klein-4b-Q8_0.gguf', files.writeFlux2KleinDit);
  serve('unsloth/Qwen3-4B-GGUF', 'Qwen3-4B-Q4_0.gguf', files.writeQwen3, { size: '4b' });
  serve('Comfy-Org/flux2-dev', 'split_files/vae/flux2-vae.safetensors', files.writeFlux2Vae);
  serve('org/sdxl-unet', 'sdxl_unet.safetensors', files.writeSdxlUnet, { naming: 'ldm' });
  serve('org/sdxl-unet-diffusers', 'diffusion_pytorch_model.safetensors', files.writeSdxlUnet, { naming: 'diffusers' });
  serve('Comfy-Org/stable-diffusion-3.5-fp8', 'text_encoders/clip_l.safetensors', files.writeClipL);
  serve('Comfy-Org/stable-diffusion-3.5-fp8', 'text_encoders/clip_g.safetensors', files.writeClipG);
  serve('stabilityai/sdxl-vae', 'sdxl_vae.safetensors', files.writeSdxlVae);
});

after(async () => {
  await srv.close();
});

function runExample(script, args, userData) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'examples', script), ...args], {
      cwd: userData,
      env: {
        ...process.env,
        HF_ENDPOINT: srv.url,
        GENAI_ELECTRON_USER_DATA: userData,
        GENAI_ELECTRON_SD_BINARY_DIR: FAKE_SD,
        // the served model files are headers only: the fake generates from them when told so
        FAKE_SD_HEADER_ONLY: '1',
      },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

function assertPng(file) {
  const buf = fs.readFileSync(file);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

test('examples/flux2-klein.js downloads, starts by id and saves an image; a second run reuses the model', async () => {
  const ud = tempRoot('genai-example-flux-');
  const first = await runExample('flux2-klein.js', ['a lighthouse', 'out.png'], ud);
  assert.equal(first.code, 0, first.out);
  assert.deepEqual(assertPng(path.join(ud, 'out.png')), { width: 768, height: 768 });
  assert.match(first.out, /\[3\/3\] vae: split_filesvaeflux2-vae\.safetensors/);
  const record = JSON.parse(fs.readFileSync(path.join(ud, 'models', 'diffusion', 'flux-2-klein-4b-q80.json'), 'utf8'));
  assert.deepEqual(Object.keys(record.components), ['diffusion_model', 'llm', 'vae']);
  srv.resetStats();
  const second = await runExample('flux2-klein.js', ['again', 'out2.png'], ud);
  assert.equal(second.code, 0, second.out);
  assert.doesNotMatch(second.out, /\[1\/3\]/, 'no second download');
  const fetched = Object.entries(srv.stats).filter(([, st]) => st.get > 0 && st.bytesSent > 0);
  assert.deepEqual(fetched.map(([p]) => p), [], 'the second run downloaded nothing');
  assertPng(path.join(ud, 'out2.png'));
});

test('examples/sdxl-split.js generates with the four split files', async () => {
  const ud = tempRoot('genai-example-sdxl-');
  const r = await runExample('sdxl-split.js', ['org/sdxl-unet', 'sdxl_unet.safetensors', 'a fox', 'fox.png'], ud);
  assert.equal(r.code, 0, r.out);
  assert.deepEqual(assertPng(path.join(ud, 'fox.png')), { width: 1024, height: 1024 });
});

test('examples/sdxl-split.js refuses a diffusers-named UNet with a clear error', async () => {
  const ud = tempRoot('genai-example-sdxl-bad-');
  const r = await runExample('sdxl-split.js', ['org/sdxl-unet-diffusers', 'diffusion_pytorch_model.safetensors'], ud);
  assert.equal(r.code, 1, r.out);
  // Refused from the headers before any byte of the model is downloaded.
  assert.match(r.out, /DownloadError: .*Incompatible components: .*diffusers tensor names/);
});
