'use strict';
/**
 * Helpers for the diffusion server suites: model records built from the fake-sd model-file
 * builders (tiny files whose headers look like the real models), simulated machines, the fake
 * programs' argument log, and small HTTP/PNG utilities. Everything talks to 127.0.0.1 only.
 */

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tempRoot, writeRecord } = require('./storage.js');

const FAKE_SD_DIR = path.join(__dirname, '..', 'fixtures', 'fake-sd');
/** Real sd-server output (first job loads three weight sets) for FAKE_SD_REPLAY. */
const REPLAY_CAPTURE = path.join(__dirname, '..', 'fixtures', 'sdcpp-output', 'srv.out');

/**
 * Makes the fake sd-servers spawned from now on replay REPLAY_CAPTURE with its real timing,
 * each wait capped at 300 ms (the loading bars' real 110-155 ms gaps, longer than the 100 ms
 * progress throttle, are kept); `false` turns it off.
 */
function replayRealRun(on = true) {
  if (!on) {
    delete process.env.FAKE_SD_REPLAY;
    delete process.env.FAKE_SD_REPLAY_MAX_MS;
    return;
  }
  fs.accessSync(REPLAY_CAPTURE);
  process.env.FAKE_SD_REPLAY = REPLAY_CAPTURE;
  process.env.FAKE_SD_REPLAY_MAX_MS = '300';
}
const modelFiles = require('../fixtures/fake-sd/lib/model-files.js');

const GIB = 1024 ** 3;

/** A diffusion record whose files exist; `sizes` are the record's (realistic) byte counts. */
function record(root, { id, name, dir, components, single, size }) {
  const base = path.join(root, 'models', 'diffusion', dir || id);
  fs.mkdirSync(base, { recursive: true });
  const rec = {
    id,
    name: name || id,
    type: 'diffusion',
    size: 0,
    path: '',
    downloadedAt: '2026-08-01T10:00:00.000Z',
    source: { type: 'url', url: `https://example.invalid/${id}` },
  };
  if (single) {
    const p = single.write(path.join(base, single.file));
    rec.path = p;
    rec.size = size || fs.statSync(p).size;
  } else {
    rec.components = {};
    let total = 0;
    for (const [role, c] of Object.entries(components)) {
      const p = c.write(path.join(base, c.file));
      rec.components[role] = { path: p, size: c.size };
      total += c.size;
    }
    rec.path = rec.components.diffusion_model.path;
    rec.size = size || total;
  }
  writeRecord(root, rec);
  return rec;
}

/**
 * Flux 2 Klein: DiT + Qwen3 (`llm`) + Flux 2 VAE. Sizes are those of the real Q8_0 DiT, Q4_0
 * Qwen3-4B and flux2-vae (about 7.1 GB together). `llm: '8b'` gives the wrong-width encoder,
 * `vae: 'flux1'` the wrong VAE.
 */
function kleinRecord(root, { id = 'flux-2-klein', llm = '4b', vae = 'flux2', sizes = {} } = {}) {
  return record(root, {
    id,
    name: 'Flux 2 Klein',
    components: {
      // Insertion order differs from the canonical order on purpose.
      vae: {
        file: vae === 'flux1' ? 'ae.safetensors' : 'flux2-vae.safetensors',
        size: sizes.vae || 335_000_000,
        write: (p) => (vae === 'flux1' ? modelFiles.writeFlux1Vae(p) : modelFiles.writeFlux2Vae(p)),
      },
      diffusion_model: {
        file: 'flux-2-klein-4b-Q8_0.gguf',
        size: sizes.diffusion_model || 4_300_000_000,
        write: (p) => modelFiles.writeFlux2KleinDit(p),
      },
      llm: {
        file: llm === '8b' ? 'Qwen3-8B-Q8_0.gguf' : 'Qwen3-4B-Q4_0.gguf',
        size: sizes.llm || 2_500_000_000,
        write: (p) => modelFiles.writeQwen3(p, { size: llm }),
      },
    },
  });
}

/** SDXL split: UNet + CLIP-L + CLIP-G + VAE, about 6.9 GB. `unet: 'diffusers'` cannot work. */
function sdxlSplitRecord(root, { id = 'sdxl-split', unet = 'ldm' } = {}) {
  return record(root, {
    id,
    name: 'SDXL split',
    components: {
      clip_g: { file: 'clip_g.safetensors', size: 1_389_386_472, write: (p) => modelFiles.writeClipG(p) },
      diffusion_model: {
        file: 'sdxl_unet.safetensors',
        size: 5_135_188_784,
        write: (p) => modelFiles.writeSdxlUnet(p, { naming: unet }),
      },
      vae: { file: 'sdxl_vae.safetensors', size: 167_335_334, write: (p) => modelFiles.writeSdxlVae(p) },
      clip_l: { file: 'clip_l.safetensors', size: 246_145_768, write: (p) => modelFiles.writeClipL(p) },
    },
  });
}

/** A single-file SDXL checkpoint (`-m`). */
function sdxlCheckpointRecord(root, { id = 'sdxl-base', size = 6_938_078_334 } = {}) {
  return record(root, {
    id,
    single: { file: 'sd_xl_base_1.0.safetensors', write: (p) => modelFiles.writeSdxlCheckpoint(p) },
    size,
  });
}

/** Writes a simulated machine (README, "Simulating a machine") and returns its path. */
function machine(dir, vramGiB, { ramGiB = 32 } = {}) {
  const file = path.join(dir, `machine-${vramGiB === null ? 'nogpu' : `${vramGiB}gb`}-${ramGiB}gb-ram.json`);
  const gpu =
    vramGiB === null
      ? { available: false }
      : { available: true, type: 'nvidia', name: `Simulated ${vramGiB} GB`, vram: vramGiB * GIB, vramAvailable: vramGiB * GIB };
  fs.writeFileSync(
    file,
    JSON.stringify({ simulated: true, memory: { total: ramGiB * GIB, available: ramGiB * GIB * 0.75 }, gpu }),
  );
  return file;
}

/** A file the fake programs append their argv to (FAKE_SD_LOG_ARGS); returns a reader. */
function argsLog(dir) {
  const file = path.join(dir, `args-${process.pid}-${Math.random().toString(36).slice(2)}.log`);
  process.env.FAKE_SD_LOG_ARGS = file;
  return {
    file,
    all() {
      if (!fs.existsSync(file)) return [];
      return fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    },
    last() {
      const a = this.all();
      return a[a.length - 1];
    },
    clear() {
      fs.rmSync(file, { force: true });
    },
  };
}

/** Width and height from a PNG's IHDR; throws if it is not a PNG. */
function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!Buffer.isBuffer(buf) || buf.length < 24 || !buf.subarray(0, 8).equals(sig)) throw new Error('not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** True if a process with this pid exists (and is not a zombie). */
function processAlive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Every live process (not this one) whose command line mentions `needle`. Tests pass their own
 * userData root, which appears in every sd.cpp argv they cause, so suites running in parallel do
 * not see each other's processes, and a leaked orphan (re-parented to init) is still found.
 */
function processesMatching(needle) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (Number(d) !== process.pid && cmd.includes(needle) && processAlive(Number(d))) out.push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

async function http(port, method, urlPath, body, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Polls GET /v1/images/generations/:id until `done(state)`; returns every state seen. */
async function pollUntil(port, id, done, { intervalMs = 5, timeoutMs = 20000 } = {}) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await http(port, 'GET', `/v1/images/generations/${id}`);
    seen.push(r);
    if (done(r)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out polling ${id}: last ${r.status} ${r.text.slice(0, 200)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const terminal = (r) => r.status !== 200 || ['complete', 'error', 'cancelled'].includes(r.json.status);

/** A fresh userData root with the fake programs as binaries (config.binaryPath). */
function setup() {
  // The model files of these tests are headers only (KBs for GBs of weights): the fake programs
  // generate from them only when told so (the real ones cannot; test:real shows real runs).
  process.env.FAKE_SD_HEADER_ONLY = '1';
  const root = tempRoot('genai-rs-diffusion-');
  return { root, binaryPath: FAKE_SD_DIR, tmp: fs.mkdtempSync(path.join(os.tmpdir(), 'genai-rs-dtmp-')) };
}

/** The next `name` event of `emitter` whose payload satisfies `pred`. */
function nextEvent(emitter, name, pred = () => true) {
  return new Promise((resolve) => {
    const on = (e) => {
      if (!pred(e)) return;
      emitter.off(name, on);
      resolve(e);
    };
    emitter.on(name, on);
  });
}

module.exports = {
  FAKE_SD_DIR,
  REPLAY_CAPTURE,
  replayRealRun,
  nextEvent,
  GIB,
  modelFiles,
  kleinRecord,
  sdxlSplitRecord,
  sdxlCheckpointRecord,
  machine,
  argsLog,
  pngSize,
  processAlive,
  processesMatching,
  http,
  pollUntil,
  terminal,
  setup,
};
