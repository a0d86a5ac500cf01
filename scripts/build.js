#!/usr/bin/env node
'use strict';
/**
 * `npm install` / `npm run build`: in a source checkout, builds the native addon from source
 * (release; `--debug` for a debug build) and generates the loader binding.js. In an installed
 * package (no Rust sources) nothing is built: the addon comes from this platform's prebuilt
 * package (`genai-electron-rs-<platform>`, an optional dependency) or a `.node` shipped alongside.
 */
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { hostSuffix, packageName, PLATFORMS } = require('./platform.js');

const root = path.join(__dirname, '..');

/** Where this platform's prebuilt addon is, or null. */
function prebuiltAddon() {
  const local = fs.readdirSync(root).find((f) => f.endsWith('.node'));
  if (local) return path.join(root, local);
  try {
    return path.dirname(require.resolve(`${packageName(hostSuffix())}/package.json`, { paths: [root] }));
  } catch {
    return null;
  }
}

if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
  if (prebuiltAddon()) process.exit(0);
  const suffix = hostSuffix();
  const known = PLATFORMS.some((p) => p.suffix === suffix);
  console.error(
    `genai-electron-rs: no prebuilt native addon for ${process.platform}-${process.arch} (${suffix}) in this package, and no sources to build one.\n` +
      (known
        ? `  The package ${packageName(suffix)} should have come as an optional dependency: install without --omit=optional / --no-optional, or add it explicitly.`
        : `  Prebuilt addons exist for ${PLATFORMS.map((p) => p.suffix).join(', ')}; elsewhere build from a source checkout (needs Rust).`),
  );
  process.exit(1);
}

const { cargoEnv } = require('./env.js');
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('genai-electron-rs: @napi-rs/cli is not installed; run `npm install` in the package folder.');
  process.exit(1);
}
const args = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts'];
if (!process.argv.includes('--debug')) args.push('--release');
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: cargoEnv() });
process.exit(r.status === null ? 1 : r.status);
