'use strict';
/**
 * systemInfo against the real genai-electron (npm, pinned in devDependencies) on this machine:
 * the same CPU facts, platform, total RAM, recommendations and canRunModel verdicts (texts
 * included) for diffusion records, whose sizing rule is the same at genai-electron 0.5 and today.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const { systemInfo } = require('..');
const { tempDir } = require('./helpers/system.js');

const REGISTER = path.join(__dirname, 'fixtures', 'electron-stub', 'register.mjs');
const G = 1024 ** 3;

/** Runs `body` with genai-electron's `systemInfo` as `si`; returns its JSON result. */
function genaiElectron(body) {
  const code = `const { systemInfo: si } = await import('genai-electron');\nconst out = await (async () => { ${body} })();\nprocess.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--no-warnings', '--import', REGISTER, '--input-type=module', '-e', code], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, STUB_ELECTRON_USER_DATA: tempDir('genai-compat-system-') },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `genai-electron script failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

function sizes() {
  // Around the total-RAM boundary, and either side of the 8 GiB CPU-only advisory.
  const t = os.totalmem();
  return [6.5 * G, 8 * G, 9 * G, (t / 1.2) * 0.97, (t / 1.2) * 1.03, t * 2];
}

test('detect() matches genai-electron on this machine', async () => {
  delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
  const theirs = genaiElectron('return si.detect(true);');
  const ours = await systemInfo.detect(true);
  assert.deepEqual(ours.cpu, theirs.cpu);
  assert.equal(ours.platform, theirs.platform);
  assert.equal(ours.memory.total, theirs.memory.total);
  assert.equal(ours.gpu.available, theirs.gpu.available);
  const contractGpu = (g) => ({ available: g.available, type: g.type, name: g.name });
  if (JSON.stringify(contractGpu(ours.gpu)) === JSON.stringify(contractGpu(theirs.gpu)) && ours.gpu.vram === theirs.gpu.vram) {
    assert.deepEqual(ours.recommendations, theirs.recommendations);
  }
});

test('canRunModel verdicts and texts match genai-electron for diffusion records', async () => {
  delete process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
  const list = sizes();
  const theirs = genaiElectron(
    `const out = [];
     for (const size of ${JSON.stringify(list)}) out.push(await si.canRunModel({ id: 'm', type: 'diffusion', size }, { checkTotalMemory: true }));
     return { gpu: (await si.detect()).gpu.available, out };`,
  );
  const ours = [];
  for (const size of list) ours.push(await systemInfo.canRunModel({ id: 'm', type: 'diffusion', size }, { checkTotalMemory: true }));
  if ((await systemInfo.detect()).gpu.available === theirs.gpu) {
    assert.deepEqual(ours, theirs.out);
  } else {
    // One side found a GPU the other could not (e.g. NVML without nvidia-smi): only the
    // CPU-only advisory may differ.
    assert.deepEqual(ours.map((r) => r.possible), theirs.out.map((r) => r.possible));
  }
  assert.ok(ours.some((r) => !r.possible), 'the list crosses the total-RAM boundary');
});
