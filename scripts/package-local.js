#!/usr/bin/env node
'use strict';
/**
 * `npm run package:local`: builds the release addon for this machine and writes two tarballs into
 * pack/: the main package (JS, types, loader, CLI; no addon inside) and this platform's addon
 * package (`genai-electron-rs-<platform>`), as `npm publish` would upload them. Installing both
 * gives a working package with no Rust toolchain. Cargo reuses an up-to-date release build.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { cargoEnv } = require('./env.js');
const { PLATFORMS, hostSuffix, packageName, addonFile } = require('./platform.js');

const root = path.join(__dirname, '..');
const packDir = path.join(root, 'pack');
const stage = path.join(packDir, '.stage');
const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function fail(message) {
  console.error(`package:local: ${message}`);
  process.exit(1);
}

function npm(args, cwd) {
  const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { cwd, encoding: 'utf8', shell: process.platform === 'win32' });
  if (r.status !== 0) fail(`npm ${args.join(' ')} failed in ${cwd}:\n${r.stderr}`);
  return r.stdout;
}

// Every platform package is an optional dependency of the main package, at the same version.
for (const p of PLATFORMS) {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', p.suffix, 'package.json'), 'utf8'));
  if (pkg.version !== main.version) fail(`npm/${p.suffix} is at ${pkg.version}, the package at ${main.version}`);
  if ((main.optionalDependencies || {})[pkg.name] !== main.version) fail(`optionalDependencies lacks ${pkg.name}@${main.version}`);
}

const suffix = hostSuffix();
if (!PLATFORMS.some((p) => p.suffix === suffix)) fail(`no platform package for ${suffix}`);

fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });
for (const f of fs.readdirSync(packDir)) if (f.endsWith('.tgz')) fs.rmSync(path.join(packDir, f));

// The release addon and its loader, built into the stage (the checkout's own files stay as they are).
const addonOut = path.join(stage, 'addon');
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
const build = spawnSync(
  process.execPath,
  [cli, 'build', '--platform', '--release', '--output-dir', addonOut, '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: cargoEnv() },
);
if (build.status !== 0) fail('the release build failed');
const addon = path.join(addonOut, addonFile(suffix));
if (!fs.existsSync(addon)) fail(`the build did not produce ${addonFile(suffix)}`);

// Main package: what `npm pack` would take from the checkout, less any addon, plus the fresh loader.
const listed = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root))[0].files.map((f) => f.path);
const mainStage = path.join(stage, 'main');
for (const rel of listed) {
  if (rel.endsWith('.node') || rel === 'binding.js' || rel === 'binding.d.ts') continue;
  fs.mkdirSync(path.dirname(path.join(mainStage, rel)), { recursive: true });
  fs.copyFileSync(path.join(root, rel), path.join(mainStage, rel));
}
for (const f of ['binding.js', 'binding.d.ts']) fs.copyFileSync(path.join(addonOut, f), path.join(mainStage, f));
// Users get the install script only (it explains a platform without a prebuilt addon); the
// development scripts and dependencies stay in the repository.
const published = { ...main, scripts: { install: main.scripts.install } };
delete published.devDependencies;
fs.writeFileSync(path.join(mainStage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);

// Platform package: its package.json and README, plus the addon.
const platStage = path.join(stage, suffix);
fs.cpSync(path.join(root, 'npm', suffix), platStage, { recursive: true });
fs.copyFileSync(addon, path.join(platStage, addonFile(suffix)));

for (const dir of [mainStage, platStage]) npm(['pack', '--ignore-scripts', '--pack-destination', packDir], dir);
fs.rmSync(stage, { recursive: true, force: true });

const tarballs = fs.readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
for (const t of tarballs) console.log(path.join('pack', t));
if (!tarballs.includes(`${packageName(suffix)}-${main.version}.tgz`)) fail('the platform tarball is missing');
