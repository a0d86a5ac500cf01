#!/usr/bin/env node
/**
 * GPU detection cross-check for machines with NVIDIA GPUs: prints `systemInfo.detect()` beside
 * `nvidia-smi`'s name, total and free VRAM per device, and exits 1 where they disagree (a name,
 * the device count, total VRAM by more than 5 %, or free VRAM by more than 5 % of total, since
 * free memory moves between the two readings). Exits 0 with a message where there is no NVIDIA
 * GPU or no nvidia-smi.
 *
 *   node bench/gpu-check.mjs [--require-nvml]
 *
 * --require-nvml also fails when detection did not come from NVML (i.e. it fell back to
 * nvidia-smi, which would make the comparison trivially agree).
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { systemInfo } = require('../index.js');

const TOLERANCE = 0.05;
const MIB = 1024 * 1024;
const requireNvml = process.argv.includes('--require-nvml');

function nvidiaSmi() {
  const args = ['--query-gpu=name,memory.total,memory.free', '--format=csv,noheader'];
  return new Promise((resolve) => {
    execFile('nvidia-smi', args, { timeout: 10_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error) {
        const why = error.code === 'ENOENT' ? 'not found' : `${error.message.split('\n')[0]} ${String(stderr || stdout).trim()}`;
        resolve({ error: why });
      } else resolve({ stdout });
    });
  });
}

/** `name, <n> MiB, <n> MiB` lines; the name is everything before the last two commas. */
function parse(stdout) {
  const mib = (s) => {
    const n = Number.parseFloat(s);
    return Number.isFinite(n) ? Math.round(n * MIB) : undefined;
  };
  return stdout
    .split(/\r?\n/)
    .map((line) => line.split(','))
    .filter((parts) => parts.length >= 3)
    .map((parts) => ({
      name: parts.slice(0, -2).join(',').trim(),
      vram: mib(parts[parts.length - 2]),
      vramAvailable: mib(parts[parts.length - 1]),
    }))
    .filter((d) => d.name !== '');
}

const gib = (b) => (b === undefined ? '-' : `${(b / 1024 ** 3).toFixed(2)} GiB`);
const pct = (a, b, base) => (a === undefined || b === undefined ? NaN : Math.abs(a - b) / base);

const smi = await nvidiaSmi();
const caps = await systemInfo.detect(true);
const gpu = caps.gpu;

console.log(`systemInfo.detect(): ${gpu.available ? `${gpu.type} "${gpu.name}" via ${gpu.source}` : 'no GPU'}`);
if (gpu.available) {
  console.log(`  vram ${gib(gpu.vram)}, free ${gib(gpu.vramAvailable)}, driver ${gpu.driverVersion ?? '-'}, CUDA ${gpu.cudaVersion ?? '-'}`);
}

if (smi.error) {
  console.log(`no NVIDIA GPU / nvidia-smi not found (nvidia-smi: ${smi.error})`);
  if (gpu.available && gpu.type === 'nvidia') console.log('note: detect() found an NVIDIA GPU that nvidia-smi could not report; nothing to compare.');
  process.exit(0);
}
const expected = parse(smi.stdout);
if (expected.length === 0) {
  console.log(`no NVIDIA GPU / nvidia-smi not found (nvidia-smi listed no GPU: ${JSON.stringify(smi.stdout.trim())})`);
  process.exit(0);
}

const problems = [];
const found = gpu.type === 'nvidia' && Array.isArray(gpu.devices) ? gpu.devices : [];
if (found.length !== expected.length) {
  problems.push(`nvidia-smi lists ${expected.length} GPU(s), detect() ${found.length} NVIDIA device(s)`);
}
console.log('\n  #  name (detect | nvidia-smi)                                   total (detect | smi)        free (detect | smi)');
expected.forEach((want, i) => {
  const got = found[i] || {};
  console.log(
    `  ${i}  ${String(got.name ?? '-').padEnd(28)} | ${want.name.padEnd(28)}  ${gib(got.vram).padStart(10)} | ${gib(want.vram).padEnd(10)}  ${gib(got.vramAvailable).padStart(10)} | ${gib(want.vramAvailable)}`,
  );
  if (got.name !== want.name) problems.push(`GPU ${i}: name ${JSON.stringify(got.name)} vs ${JSON.stringify(want.name)}`);
  if (want.vram !== undefined) {
    const d = pct(got.vram, want.vram, want.vram);
    if (!(d <= TOLERANCE)) problems.push(`GPU ${i}: total VRAM ${gib(got.vram)} vs ${gib(want.vram)}`);
    if (want.vramAvailable !== undefined) {
      const f = pct(got.vramAvailable, want.vramAvailable, want.vram);
      if (!(f <= TOLERANCE)) problems.push(`GPU ${i}: free VRAM ${gib(got.vramAvailable)} vs ${gib(want.vramAvailable)}`);
    }
  }
});
const biggest = expected.reduce((a, b) => ((b.vram ?? 0) > (a.vram ?? 0) ? b : a));
if (gpu.name !== biggest.name) problems.push(`reported GPU "${gpu.name}" is not the one with most VRAM ("${biggest.name}")`);
if (gpu.source !== 'nvml') {
  const msg = `detection came from ${gpu.source}, not NVML (set GENAI_ELECTRON_DEBUG=1 to see why NVML failed)`;
  if (requireNvml) problems.push(msg);
  else console.log(`\nwarning: ${msg}`);
}

if (problems.length > 0) {
  console.log(`\nDISAGREE (tolerance ${TOLERANCE * 100}%):`);
  for (const p of problems) console.log(`  - ${p}`);
  process.exit(1);
}
console.log(`\nagree: ${expected.length} GPU(s) within ${TOLERANCE * 100}%`);
