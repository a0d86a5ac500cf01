#!/usr/bin/env node
// Download benchmark: the same workloads through genai-electron-rs, genai-electron and
// curl + sha256sum, against the local Hugging Face-like server (__test__/fixtures/hf-server.js).
// Each run is a separate process measured with /usr/bin/time (wall, CPU, peak RSS); the Node
// runners also report the main thread's event-loop delay p99. See bench/README.md.
//
//   node bench/download.mjs [--size-gib=4] [--klein-scale=0.25] [--only=ours,genai-electron,curl]
//                           [--workloads=big,klein,big-capped,klein-capped] [--runs=1] [--keep]
//                           [--cap-mbps=50] [--capped-size-gib=2] [--connections=N]
//
// The `-capped` workloads cap every connection of the server at --cap-mbps MB/s, as CDNs often
// do: there one connection per file leaves most of the line idle.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { machine, writeResults } from './results.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.join(here, '..');
const { startHfServer } = require('../__test__/fixtures/hf-server.js');

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v === undefined ? true : v];
  }),
);
const SIZE_GIB = Number(args['size-gib'] ?? 4);
const KLEIN_SCALE = Number(args['klein-scale'] ?? 0.25);
const RUNS = Number(args.runs ?? 1);
const ONLY = String(args.only ?? 'ours,genai-electron,curl').split(',');
const WORKLOADS = String(args.workloads ?? 'big,klein,big-capped,klein-capped').split(',');
const CAP_BPS = Number(args['cap-mbps'] ?? 50) * 1e6;
const CAPPED_SIZE_GIB = Number(args['capped-size-gib'] ?? 2);

function log(...m) {
  process.stderr.write(`${m.join(' ')}\n`);
}

/** genai-electron (bench/package.json) and an `electron` stub answering app.getPath('userData'). */
function prepareGenaiElectron() {
  const stub = path.join(here, 'node_modules', 'electron');
  if (!fs.existsSync(path.join(here, 'node_modules', 'genai-electron', 'package.json'))) {
    log('installing bench dependencies (genai-electron) under bench/ ...');
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: here, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm install in bench/ failed');
  }
  fs.mkdirSync(stub, { recursive: true });
  fs.writeFileSync(path.join(stub, 'package.json'), JSON.stringify({ name: 'electron', version: '0.0.0-bench-stub', type: 'module', main: 'index.js', exports: './index.js' }, null, 2));
  fs.writeFileSync(path.join(stub, 'index.js'), [
    '// Bench stub: genai-electron only needs app.getPath(\'userData\') to run in plain Node.',
    'export const app = { getPath: () => process.env.BENCH_ELECTRON_USER_DATA, getName: () => \'bench\', isReady: () => true, on() {}, once() {} };',
    'export default { app };',
    '',
  ].join('\n'));
}

/** Runs a command under /usr/bin/time; returns {wallS, userS, sysS, maxRssKiB, stdout}. */
function timed(cmd, argv, env = {}) {
  return new Promise((resolve, reject) => {
    const marker = '__BENCH_TIME__';
    const child = spawn('/usr/bin/time', ['-f', `${marker} %e %U %S %M`, cmd, ...argv], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = err.split('\n').find((l) => l.startsWith(marker));
      if (code !== 0 || !line) {
        reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}):\n${err.slice(-3000)}`));
        return;
      }
      const [, e, u, s, m] = line.split(' ');
      resolve({ wallS: Number(e), userS: Number(u), sysS: Number(s), maxRssKiB: Number(m), stdout: out });
    });
  });
}

function combine(parts) {
  return {
    wallS: parts.reduce((a, p) => a + p.wallS, 0),
    cpuS: parts.reduce((a, p) => a + p.userS + p.sysS, 0),
    maxRssMiB: Math.max(...parts.map((p) => p.maxRssKiB)) / 1024,
  };
}

async function runNode(runner, job) {
  const script = path.join(here, 'runners', `${runner}.mjs`);
  const r = await timed(process.execPath, [script, JSON.stringify(job)]);
  const res = JSON.parse(r.stdout.trim().split('\n').pop());
  return { ...combine([r]), loopP99Ms: res.loopP99Ms, loopMaxMs: res.loopMaxMs, startRssMiB: res.startRssMiB, inProcessS: res.wallMs / 1000, extra: res.extra, progressCalls: res.progressCalls };
}

/** curl each file (following the HF redirect), then sha256sum each: the no-library baseline. */
async function runCurl(files, dir) {
  const transfer = [];
  const hash = [];
  for (const f of files) {
    const out = path.join(dir, f.name);
    transfer.push(await timed('curl', ['-sS', '-f', '-L', '-o', out, f.url]));
  }
  // The durable baseline: the same bytes flushed to disk, as this library does before its rename.
  const flush = [];
  for (const f of files) flush.push(await timed('sync', [path.join(dir, f.name)]));
  for (const f of files) {
    const r = await timed('sha256sum', [path.join(dir, f.name)]);
    const got = r.stdout.split(' ')[0];
    if (got !== f.sha256) throw new Error(`curl baseline: sha256 mismatch for ${f.name}`);
    hash.push(r);
  }
  const all = combine([...transfer, ...flush, ...hash]);
  return {
    ...all,
    transferOnlyS: combine(transfer).wallS,
    transferSyncS: combine([...transfer, ...flush]).wallS,
    loopP99Ms: null,
  };
}

function fmt(n, d = 2) {
  return n === null || n === undefined ? 'n/a' : Number(n).toFixed(d);
}

function table(title, bytes, rows) {
  const gib = bytes / 2 ** 30;
  const lines = [
    `\n## ${title} (${fmt(gib, 2)} GiB)`,
    '',
    '| runner | wall s | MiB/s | CPU s | RSS before MiB | peak RSS MiB | event-loop p99 ms | event-loop max ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, r] of rows) {
    lines.push(`| ${name} | ${fmt(r.wallS)} | ${fmt(bytes / 2 ** 20 / r.wallS, 0)} | ${fmt(r.cpuS)} | ${fmt(r.startRssMiB, 1)} | ${fmt(r.maxRssMiB, 1)} | ${fmt(r.loopP99Ms)} | ${fmt(r.loopMaxMs)} |`);
    if (r.transferOnlyS !== undefined) {
      lines.push(`| curl transfer only | ${fmt(r.transferOnlyS)} | ${fmt(bytes / 2 ** 20 / r.transferOnlyS, 0)} | | | | | |`);
      lines.push(`| curl transfer + fsync | ${fmt(r.transferSyncS)} | ${fmt(bytes / 2 ** 20 / r.transferSyncS, 0)} | | | | | |`);
    }
  }
  return lines.join('\n');
}

async function main() {
  if (!fs.existsSync(path.join(repoRoot, 'binding.js'))) throw new Error('build the addon first: node scripts/build.js');
  if (ONLY.includes('genai-electron')) prepareGenaiElectron();
  const work = fs.mkdtempSync(path.join(args.tmp || os.tmpdir(), 'genai-bench-'));
  const srv = await startHfServer();
  const report = [];
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  report.push(`${machine()}; runs per cell: ${RUNS} (best wall time shown).`);
  try {
    const workloads = {};
    if (WORKLOADS.includes('big')) {
      log(`generating a ${SIZE_GIB} GiB file and its sha256 ...`);
      const big = await srv.addGeneratedFile('bench/big', 'big-model.safetensors', Math.round(SIZE_GIB * 2 ** 30), { seed: 42 });
      // genai-electron cannot download a non-GGUF single file (its GGUF header read is mandatory),
      // so every runner fetches the big file as the diffusion model of a two-file model whose
      // second file is 1 KiB. Same bytes for everyone.
      const tiny = srv.addFile('bench/big', 'tiny-vae.safetensors', Buffer.alloc(1024, 7));
      workloads.big = {
        title: `One ${SIZE_GIB} GiB file with a checksum (+ a 1 KiB second file)`,
        files: [
          { name: 'big-model.safetensors', url: big.url, sha256: big.sha256, size: big.size, role: 'diffusion_model' },
          { name: 'tiny-vae.safetensors', url: tiny.url, sha256: tiny.sha256, size: tiny.size, role: 'vae' },
        ],
      };
    }
    if (WORKLOADS.includes('big-capped')) {
      log(`generating a ${CAPPED_SIZE_GIB} GiB file and its sha256 ...`);
      const big = await srv.addGeneratedFile('bench/capped', 'capped-model.safetensors', Math.round(CAPPED_SIZE_GIB * 2 ** 30), { seed: 43 });
      const tiny = srv.addFile('bench/capped', 'tiny-vae.safetensors', Buffer.alloc(1024, 8));
      workloads['big-capped'] = {
        title: `One ${CAPPED_SIZE_GIB} GiB file with a checksum (+ a 1 KiB second file), every connection capped at ${CAP_BPS / 1e6} MB/s`,
        capBps: CAP_BPS,
        files: [
          { name: 'capped-model.safetensors', url: big.url, sha256: big.sha256, size: big.size, role: 'diffusion_model' },
          { name: 'tiny-vae.safetensors', url: tiny.url, sha256: tiny.sha256, size: tiny.size, role: 'vae' },
        ],
      };
    }
    if (WORKLOADS.includes('klein') || WORKLOADS.includes('klein-capped')) {
      log('generating the Flux 2 Klein-shaped set ...');
      const s = (n) => Math.round(n * KLEIN_SCALE);
      const dit = await srv.addGeneratedFile('leejet/FLUX.2-klein-4B-GGUF', 'flux-2-klein-4b-Q8_0.gguf', s(4.3e9), { seed: 1 });
      const llm = await srv.addGeneratedFile('unsloth/Qwen3-4B-GGUF', 'Qwen3-4B-Q4_0.gguf', s(2.5e9), { seed: 2 });
      const vae = await srv.addGeneratedFile('Comfy-Org/flux2-dev', 'split_files/vae/flux2-vae.safetensors', s(335e6), { seed: 3 });
      const kleinFiles = [
          { name: 'flux-2-klein-4b-Q8_0.gguf', url: dit.url, sha256: dit.sha256, size: dit.size, role: 'diffusion_model' },
          { name: 'Qwen3-4B-Q4_0.gguf', url: llm.url, sha256: llm.sha256, size: llm.size, role: 'llm' },
          { name: 'flux2-vae.safetensors', url: vae.url, sha256: vae.sha256, size: vae.size, role: 'vae' },
      ];
      if (WORKLOADS.includes('klein')) {
        workloads.klein = { title: `Flux 2 Klein-shaped set, three files at ${KLEIN_SCALE}x real size`, files: kleinFiles };
      }
      if (WORKLOADS.includes('klein-capped')) {
        workloads['klein-capped'] = {
          title: `Flux 2 Klein-shaped set, three files at ${KLEIN_SCALE}x real size, every connection capped at ${CAP_BPS / 1e6} MB/s`,
          capBps: CAP_BPS,
          files: kleinFiles,
        };
      }
    }
    for (const [key, w] of Object.entries(workloads)) {
      const bytes = w.files.reduce((a, f) => a + f.size, 0);
      srv.options.rateLimitPerConnection = w.capBps || 0;
      // URL sources for every runner: genai-electron hard-codes huggingface.co for repo sources.
      // The URLs are the server's resolve URLs, so each runner follows the HF-style redirect.
      const config = {
        source: 'url', url: w.files[0].url, name: `Bench ${key}`, type: 'diffusion', checksum: w.files[0].sha256,
        ...(args.connections ? { connections: Number(args.connections) } : {}),
        components: w.files.slice(1).map((f) => ({ role: f.role, source: 'url', url: f.url, checksum: f.sha256 })),
      };
      const rows = [];
      for (const runner of ['ours', 'genai-electron', 'curl']) {
        if (!ONLY.includes(runner)) continue;
        let best = null;
        for (let i = 0; i < RUNS; i++) {
          const dir = fs.mkdtempSync(path.join(work, `${runner}-`));
          log(`${w.title}: ${runner} run ${i + 1}/${RUNS} ...`);
          let r;
          if (runner === 'curl') r = await runCurl(w.files, dir);
          else r = await runNode(runner, { userData: dir, config });
          if (runner !== 'curl' && r.extra.checksum !== `sha256:${w.files[0].sha256}`) throw new Error(`${runner}: unexpected checksum ${r.extra.checksum}`);
          if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
          log(`  wall ${fmt(r.wallS)} s, CPU ${fmt(r.cpuS)} s, RSS ${fmt(r.startRssMiB, 1)} -> ${fmt(r.maxRssMiB, 1)} MiB, loop p99 ${fmt(r.loopP99Ms)} ms`);
          if (!best || r.wallS < best.wallS) best = r;
        }
        rows.push([runner === 'curl' ? 'curl + sync + sha256sum' : runner === 'ours' ? 'genai-electron-rs' : 'genai-electron 0.26.0', best]);
      }
      report.push(table(w.title, bytes, rows));
      const get = (n) => rows.find(([name]) => name === n)?.[1];
      const ours = get('genai-electron-rs');
      const ge = get('genai-electron 0.26.0');
      const curl = get('curl + sync + sha256sum');
      const ratios = [];
      if (ours && ge) ratios.push(`${fmt(ge.wallS / ours.wallS)}x genai-electron 0.26`);
      if (ours && curl) ratios.push(`${fmt(curl.transferOnlyS / ours.wallS)}x \`curl -o\` (transfer only)`);
      report.push(`\ngenai-electron-rs: ${ratios.join(', ') || 'n/a'}; load average after: ${load()}.`);
    }
  } finally {
    await srv.close();
    if (!args.keep) fs.rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`${report.join('\n')}\n`);
  writeResults(null, 'Download benchmark', report.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
