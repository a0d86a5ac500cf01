'use strict';
/**
 * Shared by the build and test scripts: cargo builds for the host triple explicitly, because
 * `napi build` passes `--target`, and `cargo test` only reuses its artifacts when the target is
 * the same.
 */
const { execFileSync } = require('node:child_process');

function hostTriple() {
  const out = execFileSync('rustc', ['-vV'], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.startsWith('host:'));
  if (!line) throw new Error('cannot read the host triple from `rustc -vV`');
  return line.slice(5).trim();
}

function cargoEnv() {
  return { ...process.env, CARGO_BUILD_TARGET: process.env.CARGO_BUILD_TARGET || hostTriple() };
}

module.exports = { cargoEnv };
