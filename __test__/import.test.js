'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkg = path.join(__dirname, '..');

function runNode(code, env = {}, cwd = os.tmpdir()) {
  const base = { ...process.env };
  delete base.GENAI_ELECTRON_USER_DATA;
  const r = spawnSync(process.execPath, ['-e', code], { cwd, env: { ...base, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('importing needs no Electron and touches no disk', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-home-'));
  const out = runNode(
    `let found = true; try { require.resolve('electron'); } catch { found = false; }
     const g = require(${JSON.stringify(pkg)});
     console.log(JSON.stringify({ found, keys: Object.keys(g).sort() }));`,
    { HOME: home, XDG_DATA_HOME: path.join(home, 'data') },
  );
  const { found, keys } = JSON.parse(out);
  assert.equal(found, false, 'electron must not be installed for this test to mean anything');
  for (const k of ['modelManager', 'ModelManager', 'StorageManager', 'configure', 'GenaiElectronError', 'DIFFUSION_COMPONENT_FLAGS', 'DIFFUSION_COMPONENT_ORDER', 'DEFAULT_PORTS']) {
    assert.ok(keys.includes(k), k);
  }
  assert.deepEqual(fs.readdirSync(home), [], 'import wrote nothing');
});

test('userData resolution order: configure > env > electron > default', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-home-'));
  const envRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-env-'));
  const explicit = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-explicit-'));
  const env = { HOME: home, XDG_DATA_HOME: path.join(home, 'data') };
  const show = `const g = require(${JSON.stringify(pkg)}); console.log(g.getUserDataPath());`;
  assert.equal(runNode(show, env), path.join(home, 'data', 'genai-electron'));
  assert.equal(runNode(show, { ...env, GENAI_ELECTRON_USER_DATA: envRoot }), envRoot);
  assert.equal(
    runNode(`const g = require(${JSON.stringify(pkg)}); g.configure({ userDataPath: ${JSON.stringify(explicit)} }); console.log(g.getUserDataPath());`, { ...env, GENAI_ELECTRON_USER_DATA: envRoot }),
    explicit,
  );
  // An Electron main process: a stub `electron` module and process.versions.electron.
  const fakeApp = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-electron-app-'));
  const nm = path.join(fakeApp, 'node_modules', 'electron');
  fs.mkdirSync(nm, { recursive: true });
  fs.writeFileSync(path.join(nm, 'index.js'), `module.exports = { app: { getPath: (n) => n === 'userData' ? ${JSON.stringify(path.join(fakeApp, 'ud'))} : '' } };`);
  const code = `Object.defineProperty(process.versions, 'electron', { value: '30.0.0' });
    process.type = 'browser';
    const Module = require('module');
    const orig = Module._resolveFilename;
    Module._resolveFilename = function (req, ...rest) { return req === 'electron' ? ${JSON.stringify(path.join(nm, 'index.js'))} : orig.call(this, req, ...rest); };
    ${show}`;
  assert.equal(runNode(code, env), path.join(fakeApp, 'ud'));
  assert.equal(runNode(code, { ...env, GENAI_ELECTRON_USER_DATA: envRoot }), envRoot);
});

test('configure validates its input', () => {
  const g = require('..');
  assert.throws(() => g.configure({ userDataPath: '' }), TypeError);
  assert.throws(() => g.configure({ userDataPath: 42 }), TypeError);
  assert.throws(() => g.configure(null), TypeError);
});
