#!/usr/bin/env node
'use strict';
/** `npm install` / `npm run build`: builds the native addon from source (release). */
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { cargoEnv } = require('./env.js');

const root = path.join(__dirname, '..');

// An installed package (from a registry tarball) ships its prebuilt addon and no Rust sources:
// nothing to build, but say clearly when this platform has no prebuilt addon.
if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
  const prebuilt = fs.readdirSync(root).filter((f) => f.endsWith('.node'));
  if (prebuilt.length === 0) {
    console.error(`genai-electron-rs: no prebuilt native addon for ${process.platform}-${process.arch} in this package, and no sources to build one.`);
    process.exit(1);
  }
  process.exit(0);
}
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('genai-electron-rs: @napi-rs/cli is not installed; run `npm install` in the package folder.');
  process.exit(1);
}
const args = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts'];
if (!process.argv.includes('--debug')) args.push('--release');
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: cargoEnv() });
process.exit(r.status === null ? 1 : r.status);
