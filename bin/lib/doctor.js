'use strict';
/**
 * `genai-electron-rs doctor`: what this machine has (system, GPU, binaries and how start() would
 * provision them, storage) and, for each
 * diffusion model, what `diffusionServer.start()` would use and why, from the documented rules
 * (README "The binary" and "Automatic flags"). Public API only.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('../..');

const GIB = 1024 ** 3;
const EXE = process.platform === 'win32' ? '.exe' : '';
const PROGRAMS = { server: ['sd-server'], cli: ['sd-cli', 'sd'] };

function isProgram(p) {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    if (process.platform === 'win32') return true;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The places start() looks in, in order, and the programs found in each. */
function binaries() {
  const places = [];
  const env = process.env.GENAI_ELECTRON_SD_BINARY_DIR;
  if (env) places.push({ source: 'GENAI_ELECTRON_SD_BINARY_DIR', dir: env });
  places.push({ source: '<userData>/binaries/diffusion', dir: path.join(lib.getUserDataPath(), 'binaries', 'diffusion') });
  for (const place of places) {
    place.found = {};
    for (const [backend, names] of Object.entries(PROGRAMS)) {
      const hit = names.map((n) => path.join(place.dir, n + EXE)).find(isProgram);
      if (hit) place.found[backend] = hit;
    }
  }
  // Like start(): the first place that has the program of the backend wins.
  const pick = (backend) => {
    const place = places.find((p) => p.found[backend]);
    return place ? { path: place.found[backend], from: place.source } : null;
  };
  return { searched: places, server: pick('server'), cli: pick('cli') };
}

/**
 * What start() will do to get each program, by the README's "How a build is obtained": an override
 * folder is used as is; an installed build whose record names the pinned version and the program's
 * current SHA-256 is used untested; otherwise the pinned release is downloaded and validated.
 */
function provisioning(type) {
  const pins = type === 'llama' ? lib.BINARY_VERSIONS.llamaServer : lib.BINARY_VERSIONS.diffusionCpp;
  const program = type === 'llama' ? 'llama-server' : 'sd-server';
  const envName = type === 'llama' ? 'GENAI_ELECTRON_LLAMA_BINARY_DIR' : 'GENAI_ELECTRON_SD_BINARY_DIR';
  const platform = `${process.platform}-${process.arch}`;
  const manifest = process.env.GENAI_ELECTRON_BINARY_MANIFEST || null;
  const report = {
    program,
    pinned: pins.version,
    variants: (pins.variants[platform] || []).map((v) => v.type),
    manifest,
    override: process.env[envName] ? { from: envName, dir: process.env[envName] } : null,
    installed: null,
  };
  const dir = path.join(lib.getUserDataPath(), 'binaries', type);
  const exe = path.join(dir, program + EXE);
  let record = null;
  try {
    record = JSON.parse(fs.readFileSync(path.join(dir, '.validation.json'), 'utf8'));
  } catch {
    record = null;
  }
  if (isProgram(exe)) {
    const sha = crypto.createHash('sha256').update(fs.readFileSync(exe)).digest('hex');
    report.installed = {
      path: exe,
      version: record ? record.version : null,
      variant: record ? record.variant : null,
      validatedAt: record ? record.validatedAt : null,
      intact: Boolean(record && record.checksum === sha),
    };
  }
  const inst = report.installed;
  if (report.override) {
    report.action = 'override';
    report.why = `${envName} names ${report.override.dir}: used as is, nothing downloaded or tested (binaryPath in a config does the same)`;
  } else if (inst && inst.intact && (manifest || inst.version === pins.version)) {
    report.action = 'installed';
    report.why = `the installed ${inst.variant} build ${inst.version} is validated and unchanged: used with no test`;
  } else if (inst && inst.intact) {
    report.action = 'download';
    report.why = `the installed build is ${inst.version}, the pin is ${pins.version}: start() installs the pinned release (the old build stays if that fails)`;
  } else if (inst) {
    report.action = 'validate';
    report.why = `${exe} has no matching validation record: start() tests it and keeps it if it passes`;
  } else if (report.variants.length === 0) {
    report.action = 'none';
    report.why = `no ${program} build is published for ${platform}: build it and set ${envName} or binaryPath`;
  } else {
    report.action = 'download';
    report.why = `nothing installed: start() downloads ${pins.version} (variants in order: ${report.variants.join(', ')}) and validates it`;
  }
  if (manifest) report.why += ` [pins from ${manifest}]`;
  return report;
}

/** The automatic optimisation flags start() would choose for `model` on `gpu`, with reasons. */
function predictFlags(model, gpu) {
  const footprint = model.size * 1.2;
  const vram = gpu && gpu.available && gpu.vram ? gpu.vram : 0;
  const free = gpu && gpu.vramAvailable !== undefined ? gpu.vramAvailable : vram;
  const gib = (n) => `${(n / GIB).toFixed(1)} GiB`;
  const flags = {};
  if (!vram) {
    flags.offloadToCpu = { on: false, why: 'no GPU with known VRAM' };
    flags.clipOnCpu = { on: true, why: 'no GPU with known VRAM' };
    flags.vaeOnCpu = { on: false, why: 'no GPU with known VRAM' };
  } else {
    flags.offloadToCpu = {
      on: footprint > 0.85 * vram,
      why: `footprint ${gib(footprint)} (size x 1.2) ${footprint > 0.85 * vram ? '>' : '<='} 85% of ${gib(vram)} VRAM`,
    };
    const clip = vram - footprint < 6 * GIB || free - footprint < 2 * GIB;
    flags.clipOnCpu = {
      on: clip,
      why: `VRAM - footprint = ${gib(vram - footprint)} (needs >= 6 GiB), free VRAM - footprint = ${gib(free - footprint)} (needs >= 2 GiB)`,
    };
    flags.vaeOnCpu = { on: vram - footprint < 2 * GIB, why: `VRAM - footprint = ${gib(vram - footprint)} (needs >= 2 GiB)` };
  }
  const hasLlm = Boolean(model.components && model.components.llm);
  flags.diffusionFlashAttention = { on: hasLlm, why: hasLlm ? 'the model has an llm text encoder (Flux 2 style)' : 'no llm component' };
  return flags;
}

async function doctor() {
  const system = await lib.systemInfo.detect(true);
  const bins = binaries();
  const storage = lib.StorageManager.getInstance();
  const models = await lib.modelManager.listModels();
  const report = {
    package: { version: require('../../package.json').version, node: process.version, platform: `${process.platform}-${process.arch}` },
    system: { cpu: system.cpu, memory: system.memory, platform: system.platform, simulated: system.simulated === true },
    gpu: system.gpu,
    binaries: bins,
    provisioning: { diffusion: provisioning('diffusion'), llama: provisioning('llama') },
    storage: {
      userDataPath: lib.getUserDataPath(),
      models: models.length,
      used: await storage.getStorageUsed(),
      free: await storage.checkDiskSpace(),
    },
    diffusion: [],
  };
  for (const model of models.filter((m) => m.type === 'diffusion')) {
    const entry = { modelId: model.id, size: model.size, backend: 'server' };
    entry.binary = bins.server;
    entry.why = bins.server
      ? `backend 'server' (the default) uses sd-server from ${bins.server.from}`
      : `no sd-server yet: ${report.provisioning.diffusion.why}`;
    entry.flags = predictFlags(model, system.gpu);
    const fit = await lib.systemInfo.canRunModel(model, { checkTotalMemory: true });
    entry.canRun = fit;
    report.diffusion.push(entry);
  }
  return report;
}

function printDoctor(r, out, fmt) {
  const line = (s = '') => out.write(`${s}\n`);
  line(`genai-electron-rs ${r.package.version}  (Node ${r.package.node}, ${r.package.platform})`);
  line();
  line('System');
  line(`  CPU      ${r.system.cpu.model} (${r.system.cpu.cores} threads, ${r.system.cpu.architecture})`);
  line(`  Memory   ${fmt.bytes(r.system.memory.total)} total, ${fmt.bytes(r.system.memory.available)} available${r.system.simulated ? '  [simulated]' : ''}`);
  line('GPU');
  if (r.gpu.available) {
    line(`  ${r.gpu.type || 'unknown'}: ${r.gpu.name || '?'}, ${fmt.bytes(r.gpu.vram)} VRAM${r.gpu.vramAvailable !== undefined ? `, ${fmt.bytes(r.gpu.vramAvailable)} free` : ''} (via ${r.gpu.source || '?'})`);
    if (r.gpu.driverVersion) line(`  driver ${r.gpu.driverVersion}, CUDA ${r.gpu.cudaVersion || '?'}`);
  } else {
    line('  none detected: images run on the CPU (slow)');
  }
  line('Binaries (stable-diffusion.cpp)');
  for (const p of r.binaries.searched) {
    const found = Object.entries(p.found).map(([b, f]) => `${b}: ${f}`).join(', ') || 'nothing';
    line(`  ${p.source}: ${p.dir}\n    ${found}`);
  }
  line('Binary provisioning (what start() does to get each program)');
  for (const [type, p] of Object.entries(r.provisioning)) {
    line(`  ${type.padEnd(9)} ${p.program}: ${p.action}`);
    line(`            ${p.why}`);
  }
  line('Storage');
  line(`  ${r.storage.userDataPath}`);
  line(`  ${r.storage.models} model(s), ${fmt.bytes(r.storage.used)} used, ${fmt.bytes(r.storage.free)} free`);
  line('What diffusionServer.start() would use');
  if (r.diffusion.length === 0) line('  no diffusion model downloaded (see `genai-electron-rs presets`)');
  for (const d of r.diffusion) {
    line(`  ${d.modelId} (${fmt.bytes(d.size)})`);
    line(`    ${d.binary ? d.binary.path : 'no binary'}: ${d.why}`);
    for (const [flag, v] of Object.entries(d.flags)) line(`    ${flag.padEnd(24)} ${v.on ? 'on ' : 'off'}  ${v.why}`);
    line(`    memory: ${d.canRun.possible ? 'fits' : 'does not fit'}${d.canRun.reason ? ` (${d.canRun.reason})` : ''}`);
  }
}

module.exports = { doctor, printDoctor, binaries };
