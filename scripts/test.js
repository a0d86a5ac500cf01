#!/usr/bin/env node
'use strict';
/**
 * `npm test`: formatting, lints, Rust tests, then the addon is rebuilt if Rust changed and the
 * node --test suites run against the public JS API. Stops at the first failing step.
 */
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { cargoEnv } = require('./env.js');

const root = path.join(__dirname, '..');
const env = cargoEnv();

function run(title, cmd, args) {
  console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`\n${title} failed (exit ${r.status === null ? r.signal : r.status})`);
    process.exit(r.status || 1);
  }
}

const suites = fs
  .readdirSync(path.join(root, '__test__'))
  .filter((f) => f.endsWith('.test.js') || f.endsWith('.test.mjs'))
  .sort()
  .map((f) => path.join('__test__', f));

run('format', 'cargo', ['fmt', '--check']);
run('lint', 'cargo', ['clippy', '--all-targets', '--', '-D', 'warnings']);
run('rust tests', 'cargo', ['test']);
run('addon build', process.execPath, [path.join('scripts', 'build.js')]);
// No suite may fetch a real release: a start() that provisions by mistake hits a closed loopback
// port instead of the internet (the binaries suite points its pins at its own server).
env.GENAI_ELECTRON_BINARY_MIRROR = 'http://127.0.0.1:9/no-network-in-tests';
run('node tests', process.execPath, ['--test', '--test-concurrency=2', ...suites]);
