#!/usr/bin/env node
'use strict';
/** `npm install` / `npm run build`: builds the native addon from source (release). */
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { cargoEnv } = require('./env.js');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('genai-electron-rs: @napi-rs/cli is not installed; run `npm install` in the package folder.');
  process.exit(1);
}
const args = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts'];
if (!process.argv.includes('--debug')) args.push('--release');
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: cargoEnv() });
process.exit(r.status === null ? 1 : r.status);
