'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc');

function compile(args) {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--types', 'node', ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

test('index.d.ts type-checks typical usage under --strict', () => {
  compile(['--module', 'commonjs', '--moduleResolution', 'node', path.join(__dirname, 'types', 'usage.ts')]);
});

test('the declarations resolve for ESM imports and CommonJS require (exports map, nodenext)', () => {
  compile([
    '--module',
    'nodenext',
    '--moduleResolution',
    'nodenext',
    path.join(__dirname, 'types', 'esm.mts'),
    path.join(__dirname, 'types', 'cjs.cts'),
  ]);
});
