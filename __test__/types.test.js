'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

test('index.d.ts type-checks typical usage under --strict', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node', '--types', 'node', path.join(__dirname, 'types', 'usage.ts')],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
