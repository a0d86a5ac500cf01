#!/usr/bin/env node
// What the diffusion server itself adds per image, measured with the fake sd-server
// (__test__/fixtures/fake-sd): request-to-result time through generateImage() and through the
// HTTP API, minus the time the same job takes when sent straight to an identical sd-server
// (its own generation time plus its own HTTP). Prints figures and writes them, with the commit
// measured, to bench/results-diffusion-overhead-<platform>-<arch>.md; fails nobody.
//
//   node bench/diffusion-overhead.mjs [--images 60] [--steps 4] [--step-ms 5]
// Needs the addon built (node scripts/build.js). Talks to 127.0.0.1 only.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeResults } from './results.mjs';

const require = createRequire(import.meta.url);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const g = require(root);
const h = require(path.join(root, '__test__', 'helpers', 'diffusion.js'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const IMAGES = arg('images', 60);
const STEPS = arg('steps', 4);
process.env.FAKE_SD_STEP_MS = String(arg('step-ms', 5));

const now = () => Number(process.hrtime.bigint()) / 1e6;
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: q(0.5), p90: q(0.9), min: s[0] };
};
const fmt = (x) => `${x.toFixed(2)} ms`;

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

async function pollJson(url, done) {
  for (;;) {
    const r = await fetch(url);
    const j = await r.json();
    if (done(j)) return j;
    await new Promise((res) => setTimeout(res, 1));
  }
}

const env = h.setup();
g.configure({ userDataPath: env.root });
process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(env.tmp, 24);
h.kleinRecord(env.root);
const log = h.argsLog(env.tmp);
const request = { prompt: 'a lighthouse at dusk', width: 64, height: 64, steps: STEPS, seed: 1 };

const server = g.diffusionServer;
const info = await server.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: env.binaryPath });
// Warm-up: the first job of an sd-server loads tensors lazily (and a lazily spawned one starts).
await server.generateImage(request);
const argv = log.last();

// Baseline: a second sd-server with the same command line, jobs sent straight to its async API.
const port = await freePort();
const direct = argv.slice(0, -1).concat(String(port));
const child = spawn(path.join(h.FAKE_SD_DIR, 'sd-server'), direct, { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout.resume();
for (;;) {
  try {
    await fetch(`http://127.0.0.1:${port}/`);
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
const body = JSON.stringify({ prompt: request.prompt, width: 64, height: 64, seed: 1, batch_count: 1, sample_params: { sample_steps: STEPS } });
const directJob = async () => {
  const r = await fetch(`http://127.0.0.1:${port}/sdcpp/v1/img_gen`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const { id } = await r.json();
  await pollJson(`http://127.0.0.1:${port}/sdcpp/v1/jobs/${id}`, (j) => j.status === 'completed' || j.status === 'failed');
};
await directJob();

const base = `http://127.0.0.1:${info.port}`;
const httpJob = async () => {
  const r = await fetch(`${base}/v1/images/generations`, { method: 'POST', body: JSON.stringify(request) });
  const { id } = await r.json();
  const done = await pollJson(`${base}/v1/images/generations/${id}`, (j) => j.status !== 'pending' && j.status !== 'in_progress');
  if (done.status !== 'complete') throw new Error(`HTTP job ended ${done.status}`);
};

// The three paths take turns, so a change in machine load falls on all of them alike.
const baseline = [];
const viaJs = [];
const viaHttp = [];
const time = async (xs, fn) => {
  const t = now();
  await fn();
  xs.push(now() - t);
};
for (let i = 0; i < IMAGES; i++) {
  await time(baseline, directJob);
  await time(viaJs, () => server.generateImage(request));
  await time(viaHttp, httpJob);
}
await server.stop();
child.kill('SIGTERM');
fs.rmSync(env.root, { recursive: true, force: true });

const b = stats(baseline);
const js = stats(viaJs);
const ht = stats(viaHttp);
const row = (name, x) => `| ${name} | ${fmt(x.p50)} | ${fmt(x.mean)} | ${fmt(x.p90)} | ${x === b ? '-' : `${fmt(x.p50 - b.p50)} / ${fmt(x.mean - b.mean)}`} |`;
const addon = fs.readdirSync(root).find((f) => f.endsWith('.node'));
const report = [
  `Fake sd-server of the tests, ${IMAGES} images per path (the paths take turns) after one warm-up, ${STEPS} steps of ${process.env.FAKE_SD_STEP_MS} ms, 64x64;`,
  `addon \`${addon}\` (build it with \`npm run build\` for release figures).`,
  '',
  '| Path | p50 per image | mean | p90 | overhead over sd-server alone (p50 / mean) |',
  '|---|---|---|---|---|',
  row("sd-server's own job API (baseline)", b),
  row('`generateImage()`', js),
  row('HTTP `POST /v1/images/generations` + polling', ht),
].join('\n');
console.log(report);
writeResults('diffusion-overhead', 'Diffusion server overhead per image', report);
