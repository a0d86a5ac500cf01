#!/usr/bin/env node
'use strict';
/**
 * Packs the packages `npm publish` uploads into pack/: the main package (JS, types, loader, CLI;
 * no addon inside) and one package per platform addon (`genai-electron-rs-<platform>`).
 *
 * - `npm run package:local`: builds the release addon for this machine (cargo reuses an
 *   up-to-date build) and packs the main package and this platform's package. Installing both
 *   gives a working package with no Rust toolchain.
 * - `node scripts/package-local.js --artifacts <dir>` (the release workflow): packs the main
 *   package and every platform's package from addons built elsewhere (`<dir>/**` holds each
 *   `genai-electron-rs.<platform>.node` and the generated binding.js / binding.d.ts).
 * `--out <dir>` writes the tarballs there instead of pack/.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { cargoEnv } = require('./env.js');
const { PLATFORMS, hostSuffix, packageName, addonFile } = require('./platform.js');

const root = path.join(__dirname, '..');
const outAt = process.argv.indexOf('--out');
const packDir = outAt === -1 ? path.join(root, 'pack') : path.resolve(process.argv[outAt + 1]);
const stage = path.join(packDir, '.stage');
const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function npm(args, cwd) {
  const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { cwd, encoding: 'utf8', shell: process.platform === 'win32' });
  if (r.status !== 0) fail(`npm ${args.join(' ')} failed in ${cwd}:\n${r.stderr}`);
  return r.stdout;
}

/** Every file under `dir`, by base name (the first found wins). */
function filesByName(dir) {
  const found = new Map();
  for (const rel of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, rel);
    if (fs.statSync(p).isFile() && !found.has(path.basename(p))) found.set(path.basename(p), p);
  }
  return found;
}

/** Builds the release addon and its loader into `out`; returns [this platform's suffix]. */
function buildHere(out) {
  const suffix = hostSuffix();
  if (!PLATFORMS.some((p) => p.suffix === suffix)) fail(`no platform package for ${suffix}`);
  const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  const build = spawnSync(
    process.execPath,
    [cli, 'build', '--platform', '--release', '--output-dir', out, '--js', 'binding.js', '--dts', 'binding.d.ts'],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: cargoEnv() },
  );
  if (build.status !== 0) fail('the release build failed');
  return [suffix];
}

// Every platform package has the package's version (they are published together).
for (const p of PLATFORMS) {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', p.suffix, 'package.json'), 'utf8'));
  if (pkg.version !== main.version) fail(`npm/${p.suffix} is at ${pkg.version}, the package at ${main.version}`);
}

fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });
for (const f of fs.readdirSync(packDir)) if (f.endsWith('.tgz')) fs.rmSync(path.join(packDir, f));

const artifactsAt = process.argv.indexOf('--artifacts');
let addons;
let suffixes;
if (artifactsAt !== -1) {
  const dir = process.argv[artifactsAt + 1];
  if (!dir || !fs.existsSync(dir)) fail('--artifacts needs the folder of the built addons');
  addons = filesByName(path.resolve(dir));
  suffixes = PLATFORMS.map((p) => p.suffix);
} else {
  // Built into the stage: the checkout's own addon and loader stay as they are.
  const out = path.join(stage, 'addon');
  suffixes = buildHere(out);
  addons = filesByName(out);
}
for (const name of ['binding.js', 'binding.d.ts', ...suffixes.map(addonFile)]) if (!addons.has(name)) fail(`${name} is missing`);

// Main package: what `npm pack` would take from the checkout, less any addon, plus the loader.
const listed = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root))[0].files.map((f) => f.path);
const mainStage = path.join(stage, 'main');
for (const rel of listed) {
  if (rel.endsWith('.node') || rel === 'binding.js' || rel === 'binding.d.ts') continue;
  fs.mkdirSync(path.dirname(path.join(mainStage, rel)), { recursive: true });
  fs.copyFileSync(path.join(root, rel), path.join(mainStage, rel));
}
for (const f of ['binding.js', 'binding.d.ts']) fs.copyFileSync(addons.get(f), path.join(mainStage, f));
// The published manifest lists every platform package as an optional dependency at this version
// (npm installs the one whose os/cpu/libc fit). They are not in the repository's package.json,
// whose lock file could not resolve them before they are published. Users get the install script
// only (it explains a platform without a prebuilt addon); development scripts stay here.
const published = {
  ...main,
  scripts: { install: main.scripts.install },
  optionalDependencies: Object.fromEntries(PLATFORMS.map((p) => [packageName(p.suffix), main.version])),
};
delete published.devDependencies;
fs.writeFileSync(path.join(mainStage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);

// Platform packages first (the main package depends on them), then the main package.
for (const suffix of suffixes) {
  const dir = path.join(stage, suffix);
  fs.cpSync(path.join(root, 'npm', suffix), dir, { recursive: true });
  fs.copyFileSync(addons.get(addonFile(suffix)), path.join(dir, addonFile(suffix)));
  npm(['pack', '--ignore-scripts', '--pack-destination', packDir], dir);
}
npm(['pack', '--ignore-scripts', '--pack-destination', packDir], mainStage);
fs.rmSync(stage, { recursive: true, force: true });

for (const t of fs.readdirSync(packDir).filter((f) => f.endsWith('.tgz'))) console.log(path.join('pack', t));
