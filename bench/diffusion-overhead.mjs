#!/usr/bin/env node
// What the diffusion server adds per image, through generateImage() and through the HTTP API,
// next to the same jobs sent straight to an identical sd-server. Each image's overhead is its wall
// time minus sd.cpp's own time for it (its `generate_image completed in Xs` line, 10 ms steps), so
// compute noise drops out; p50, p95 and max show a tail (such as a delayed-ACK stall on one image
// in three) that a mean or a median would hide. The figures are also written, with the commit
// measured, to bench/results-diffusion-overhead[-real]-<platform>-<arch>.md.
//
//   node bench/diffusion-overhead.mjs [--images 30] [--steps 4] [--step-ms 5] [--max-overhead-ms N]
//       with the fake sd-server of the tests (__test__/fixtures/fake-sd);
//   node bench/diffusion-overhead.mjs --sd-bin DIR --user-data DIR --model ID [--size 256] [--steps 4]
//       with a real sd-server from DIR and a model downloaded into that userData.
// --max-overhead-ms N exits 1 when a path's p95 exceeds direct use's p95 by more than N ms (a
// regression check).
// Needs the addon built (node scripts/build.js). Talks to 127.0.0.1 only.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeResults } from './results.mjs';

const require = createRequire(import.meta.url);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const g = require(root);
const h = require(path.join(root, '__test__', 'helpers', 'diffusion.js'));

const opt = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const num = (name, dflt) => (opt(name) === undefined ? dflt : Number(opt(name)));
const IMAGES = num('images', 30);
const STEPS = num('steps', 4);
const SIZE = num('size', 64);
const MAX_OVERHEAD = num('max-overhead-ms', undefined);
const SD_BIN = opt('sd-bin');
const real = SD_BIN !== undefined;

const now = () => Number(process.hrtime.bigint()) / 1e6;
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { p50: q(0.5), p95: q(0.95), max: s[s.length - 1] };
};
const fmt = (x) => `${x.toFixed(2).padStart(8)} ms`;

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** One request on a fresh connection (as curl does): direct use of sd-server. */
function fresh(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function poll(get, done) {
  for (;;) {
    const j = await get();
    if (done(j)) return j;
    await new Promise((r) => setTimeout(r, 1));
  }
}

let env;
let modelId = opt('model');
let binaryPath;
if (real) {
  g.configure({ userDataPath: opt('user-data') });
  binaryPath = SD_BIN;
} else {
  env = h.setup();
  g.configure({ userDataPath: env.root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 24);
  process.env.FAKE_SD_STEP_MS = String(num('step-ms', 5));
  h.kleinRecord(env.root);
  modelId = 'flux-2-klein';
  binaryPath = env.binaryPath;
}
const argsDir = fs.mkdtempSync(path.join((env && env.tmp) || '/tmp', 'bench-args-'));
const log = h.argsLog(argsDir);
const request = { prompt: 'a lighthouse at dusk', width: SIZE, height: SIZE, steps: STEPS, seed: 1, cfgScale: 1, sampler: 'euler' };

const server = g.diffusionServer;
const info = await server.start({ modelId, port: 'auto', binaryPath, idleTimeoutMs: 0 });
// Warm-up: spawns sd-server; its first job loads tensors lazily.
await server.generateImage(request);
const spawned = server.getBackendInfo();

const DONE = /generate_image completed in ([\d.]+)s/;
/** sd.cpp's time for the image just made, from the last such line of the server's log. */
async function sdTimeFromLog() {
  const hit = (await server.getLogs(200)).reverse().find((l) => DONE.test(l));
  return Number(DONE.exec(hit)[1]) * 1000;
}

const viaJs = [];
for (let i = 0; i < IMAGES; i++) {
  const t = now();
  await server.generateImage(request);
  viaJs.push(now() - t - (await sdTimeFromLog()));
}

// The HTTP API as an app uses it: fetch with keep-alive connections.
const viaHttp = [];
const base = `http://127.0.0.1:${info.port}`;
for (let i = 0; i < IMAGES; i++) {
  const t = now();
  const r = await fetch(`${base}/v1/images/generations`, { method: 'POST', body: JSON.stringify(request) });
  const { id } = await r.json();
  const done = await poll(
    () => fetch(`${base}/v1/images/generations/${id}`).then((x) => x.json()),
    (j) => j.status !== 'pending' && j.status !== 'in_progress',
  );
  if (done.status !== 'complete') throw new Error(`HTTP job ended ${done.status}`);
  viaHttp.push(now() - t - (await sdTimeFromLog()));
}
await server.stop();

// Baseline: the same sd-server command line, jobs sent straight to its async API.
const argv = real ? undefined : log.last();
const port = await freePort();
const program = real ? path.join(SD_BIN, 'sd-server') : path.join(h.FAKE_SD_DIR, 'sd-server');
let direct;
if (argv) {
  direct = argv.slice(0, -1).concat(String(port));
} else {
  // A real sd-server's command line is in the log this run wrote.
  const lines = await server.getLogs(5000);
  const spawnLine = lines.reverse().find((l) => l.includes('Spawning sd-server: '));
  direct = spawnLine.split('Spawning sd-server: ')[1].split(' ').slice(1, -1).concat(String(port));
}
const child = spawn(program, direct, { stdio: ['ignore', 'pipe', 'pipe'] });
const sdTimes = [];
for (const stream of [child.stdout, child.stderr]) {
  let rest = '';
  stream.on('data', (d) => {
    const lines = (rest + d).split(/[\r\n]/);
    rest = lines.pop();
    for (const l of lines) if (DONE.test(l)) sdTimes.push(Number(DONE.exec(l)[1]) * 1000);
  });
}
for (;;) {
  try {
    await fresh(port, 'GET', '/v1/models');
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
const body = JSON.stringify({
  prompt: request.prompt,
  width: SIZE,
  height: SIZE,
  seed: 1,
  batch_count: 1,
  sample_params: { sample_steps: STEPS, sample_method: 'euler', guidance: { txt_cfg: 1 } },
  output_format: 'png',
});
const job = async () => {
  const { id } = await fresh(port, 'POST', '/sdcpp/v1/img_gen', body);
  await poll(() => fresh(port, 'GET', `/sdcpp/v1/jobs/${id}`), (j) => j.status === 'completed' || j.status === 'failed');
};
await job();
const baseline = [];
for (let i = 0; i < IMAGES; i++) {
  const seen = sdTimes.length;
  const t = now();
  await job();
  const wall = now() - t;
  while (sdTimes.length === seen) await new Promise((r) => setTimeout(r, 1));
  baseline.push(wall - sdTimes[seen]);
}
child.kill('SIGTERM');
if (env) fs.rmSync(env.root, { recursive: true, force: true });
fs.rmSync(argsDir, { recursive: true, force: true });

const b = stats(baseline);
const rows = [
  ['generateImage()', stats(viaJs)],
  ['HTTP POST + poll (keep-alive)', stats(viaHttp)],
];
const what = real ? `real sd-server, model ${modelId}` : `fake sd-server, ${STEPS} steps of ${process.env.FAKE_SD_STEP_MS} ms`;
console.log(`time outside sd.cpp's own compute per image (${what}, ${IMAGES} images, ${SIZE}x${SIZE}, ${STEPS} steps; sd-server spawn ${spawned.loadTimeMs} ms)`);
console.log(`  ${'path'.padEnd(30)} ${'p50'.padStart(11)} ${'p95'.padStart(11)} ${'max'.padStart(11)}   added over direct (p50 / p95 / max)`);
console.log(`  ${'sd-server alone (direct)'.padEnd(30)} ${fmt(b.p50)} ${fmt(b.p95)} ${fmt(b.max)}`);
let failed = false;
for (const [name, o] of rows) {
  const add = { p50: o.p50 - b.p50, p95: o.p95 - b.p95, max: o.max - b.max };
  console.log(`  ${name.padEnd(30)} ${fmt(o.p50)} ${fmt(o.p95)} ${fmt(o.max)}   ${fmt(add.p50)} ${fmt(add.p95)} ${fmt(add.max)}`);
  if (MAX_OVERHEAD !== undefined && add.p95 > MAX_OVERHEAD) failed = true;
}
const ms = (x) => `${x.toFixed(2)} ms`;
writeResults(real ? 'diffusion-overhead-real' : 'diffusion-overhead', 'Diffusion server overhead per image', [
  `Time outside sd.cpp's own compute per image (${what}, ${IMAGES} images, ${SIZE}x${SIZE}, ${STEPS} steps; sd-server spawn ${spawned.loadTimeMs} ms).`,
  '',
  '| path | p50 | p95 | max | added over direct (p50 / p95 / max) |',
  '|---|---|---|---|---|',
  `| sd-server alone (direct) | ${ms(b.p50)} | ${ms(b.p95)} | ${ms(b.max)} | - |`,
  ...rows.map(([name, o]) => `| ${name} | ${ms(o.p50)} | ${ms(o.p95)} | ${ms(o.max)} | ${ms(o.p50 - b.p50)} / ${ms(o.p95 - b.p95)} / ${ms(o.max - b.max)} |`),
].join('\n'));
if (failed) {
  console.error(`p95 added time above ${MAX_OVERHEAD} ms`);
  process.exit(1);
}
