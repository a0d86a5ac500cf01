'use strict';
/**
 * examples/main-process-026.mjs, a main process written as genai-electron 0.26's documentation
 * shows it, runs unchanged against this package: plain Node with an Electron `app` stand-in
 * (fixtures/electron-stub, the stub genai-electron's reference runs use), the fake sd-server, and a downloaded-model record.
 */
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers/diffusion.js');

const ROOT = path.join(__dirname, '..');
let env;

before(() => {
  env = h.setup();
  h.kleinRecord(env.root);
});

function run(extraEnv = {}) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', path.join(__dirname, 'fixtures', 'electron-stub', 'register.mjs'), path.join(ROOT, 'examples', 'main-process-026.mjs')],
      {
        env: {
          ...process.env,
          GENAI_ELECTRON_USER_DATA: env.root,
          STUB_ELECTRON_USER_DATA: env.root,
          GENAI_ELECTRON_SD_BINARY_DIR: h.FAKE_SD_DIR,
          GENAI_ELECTRON_SIMULATE_SYSTEM: h.machine(env.tmp, 24),
          FAKE_SD_STEP_MS: '1',
          ...extraEnv,
        },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

test('the 0.26-style main process calibrates, serves an image, and quits through attachAppLifecycle', async () => {
  const { code, out } = await run();
  assert.equal(code, 0, out);
  assert.match(out, /calibration: recommended \S+ of 2 run\(s\)/);
  assert.match(out, /diffusion server on port \d+, backend absent/);
  assert.match(out, /\[diffusion\] backend absent -> starting \(spawned\)/);
  const saved = /saved (\S+) \((\d+)x(\d+), seed 42/.exec(out);
  assert.ok(saved, out);
  assert.deepEqual(h.pngSize(fs.readFileSync(saved[1])), { width: 512, height: 512 });
  assert.match(out, /backend after the image: ready/);
  assert.match(out, /backend stopping -> absent \(explicit\)/);
  assert.match(out, /\[genai-electron\] Diffusion server stopped/, 'attachAppLifecycle stopped the server on before-quit');
  assert.match(out, /app-exit 0\s*$/);
  assert.deepEqual(h.processesMatching(env.root), []);
});

test('a failure is shown through formatErrorForUI and the app exits 1', async () => {
  const { code, out } = await run({ MODEL_ID: 'not-downloaded' });
  assert.equal(code, 1, out);
  assert.match(out, /Unknown Error: Model not-downloaded is not downloaded/);
  assert.match(out, /app-exit 1/);
});
