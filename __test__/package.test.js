'use strict';
/**
 * The published shape works without Rust: `npm run package:local` packs the main package and this
 * platform's addon package into pack/; both are installed into an empty folder with no Rust
 * toolchain on PATH and no registry reachable; then the package is required, imported and its
 * command line run with npx. The release build is reused when up to date (cargo decides).
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { hostSuffix, packageName, addonFile, PLATFORMS } = require('../scripts/platform.js');

const ROOT = path.join(__dirname, '..');
const main = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const suffix = hostSuffix();
const supported = PLATFORMS.some((p) => p.suffix === suffix);

/** PATH without any folder that holds a Rust toolchain (cargo, rustc, rustup). */
function pathWithoutRust() {
  const names = ['cargo', 'rustc', 'rustup'].flatMap((n) => (process.platform === 'win32' ? [`${n}.exe`] : [n]));
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => dir && !names.some((n) => fs.existsSync(path.join(dir, n))))
    .join(path.delimiter);
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', shell: process.platform === 'win32', ...opts });
  return r;
}

test('the platform packages match the napi targets and the package version', () => {
  assert.deepEqual(PLATFORMS.map((p) => p.target).sort(), [...main.napi.targets].sort());
  assert.deepEqual(fs.readdirSync(path.join(ROOT, 'npm')).sort(), PLATFORMS.map((p) => p.suffix).sort());
  for (const p of PLATFORMS) {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', p.suffix, 'package.json'), 'utf8'));
    assert.equal(pkg.name, packageName(p.suffix));
    assert.equal(pkg.version, main.version);
    assert.equal(pkg.main, addonFile(p.suffix));
    assert.deepEqual(pkg.files, [addonFile(p.suffix)]);
    assert.deepEqual(pkg.os, [p.os]);
    assert.deepEqual(pkg.cpu, [p.cpu]);
  }
});

test('the release packing takes every platform\'s addon from the build artifacts', () => {
  const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-artifacts-'));
  for (const p of PLATFORMS) {
    fs.mkdirSync(path.join(artifacts, `bindings-${p.suffix}`));
    fs.writeFileSync(path.join(artifacts, `bindings-${p.suffix}`, addonFile(p.suffix)), `addon for ${p.suffix}`);
  }
  fs.writeFileSync(path.join(artifacts, `bindings-${PLATFORMS[0].suffix}`, 'binding.js'), '// loader');
  fs.writeFileSync(path.join(artifacts, `bindings-${PLATFORMS[0].suffix}`, 'binding.d.ts'), '// types');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-packed-'));
  const r = run(process.execPath, [path.join(ROOT, 'scripts', 'package-local.js'), '--artifacts', artifacts, '--out', out], { cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  const tarballs = fs.readdirSync(out).filter((f) => f.endsWith('.tgz')).sort();
  assert.deepEqual(tarballs, [`${main.name}-${main.version}.tgz`, ...PLATFORMS.map((p) => `${packageName(p.suffix)}-${main.version}.tgz`)].sort());
  for (const p of PLATFORMS) {
    const list = run('tar', ['-tzf', path.join(out, `${packageName(p.suffix)}-${main.version}.tgz`)], {});
    assert.deepEqual(list.stdout.trim().split('\n').sort(), ['package/README.md', `package/${addonFile(p.suffix)}`, 'package/package.json']);
  }
  const mainList = run('tar', ['-tzf', path.join(out, `${main.name}-${main.version}.tgz`)], {}).stdout;
  assert.match(mainList, /package\/binding\.js/);
  assert.match(mainList, /package\/bin\/genai-electron-rs\.js/);
  assert.doesNotMatch(mainList, /\.node$/m);

  // One addon missing: nothing is published half.
  fs.rmSync(path.join(artifacts, `bindings-${PLATFORMS[4].suffix}`), { recursive: true });
  const missing = run(process.execPath, [path.join(ROOT, 'scripts', 'package-local.js'), '--artifacts', artifacts, '--out', out], { cwd: ROOT });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, new RegExp(`${addonFile(PLATFORMS[4].suffix).replace(/\./g, '\\.')} is missing`));
});

test('package:local tarballs install and run with no Rust toolchain', { skip: supported ? false : `no platform package for ${suffix}` }, () => {
  const pack = run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'package:local'], { cwd: ROOT });
  assert.equal(pack.status, 0, `${pack.stdout}\n${pack.stderr}`);
  const mainTgz = path.join(ROOT, 'pack', `${main.name}-${main.version}.tgz`);
  const platTgz = path.join(ROOT, 'pack', `${packageName(suffix)}-${main.version}.tgz`);
  assert.ok(fs.existsSync(mainTgz) && fs.existsSync(platTgz), fs.readdirSync(path.join(ROOT, 'pack')).join(', '));

  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-installed-app-'));
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-installed-data-'));
  const env = {
    ...process.env,
    PATH: pathWithoutRust(),
    GENAI_ELECTRON_USER_DATA: userData,
    npm_config_registry: 'http://127.0.0.1:9/', // nothing reachable: the other platforms' packages are skipped
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  };
  for (const k of Object.keys(env)) if (k.startsWith('CARGO') || k.startsWith('RUSTUP')) delete env[k];
  const cargo = spawnSync('cargo', ['--version'], { env });
  assert.ok(cargo.error && cargo.error.code === 'ENOENT', 'cargo is not reachable');

  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const install = run(npm, ['install', mainTgz, platTgz], { cwd: app, env });
  assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
  const installed = path.join(app, 'node_modules', main.name);
  assert.ok(fs.existsSync(path.join(app, 'node_modules', packageName(suffix), addonFile(suffix))), 'the addon package is installed');
  assert.deepEqual(fs.readdirSync(installed).filter((f) => f.endsWith('.node')), [], 'the main package carries no addon');
  assert.equal(fs.existsSync(path.join(installed, 'Cargo.toml')), false);
  const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
  assert.deepEqual(manifest.optionalDependencies, Object.fromEntries(PLATFORMS.map((p) => [packageName(p.suffix), main.version])));
  assert.deepEqual(manifest.scripts, { install: 'node scripts/build.js' });
  assert.equal(manifest.devDependencies, undefined);
  assert.deepEqual(manifest.bin, { 'genai-electron-rs': 'bin/genai-electron-rs.js' });

  // The install script (where npm runs it) builds nothing and accepts the installed addon package.
  const script = run(process.execPath, [path.join(installed, 'scripts', 'build.js')], { cwd: installed, env });
  assert.equal(script.status, 0, script.stderr);

  const cjs = run(
    process.execPath,
    ['-e', "const g = require('genai-electron-rs'); g.modelManager.listModels().then((m) => console.log(JSON.stringify({ n: m.length, presets: g.PRESETS.length, fn: typeof g.diffusionServer.start })))"],
    { cwd: app, env },
  );
  assert.equal(cjs.status, 0, cjs.stderr);
  assert.deepEqual(JSON.parse(cjs.stdout), { n: 0, presets: 6, fn: 'function' });

  const esm = run(
    process.execPath,
    ['--input-type=module', '-e', "import { modelManager, getPreset } from 'genai-electron-rs'; const m = await modelManager.listModels(); console.log(m.length, typeof getPreset)"],
    { cwd: app, env },
  );
  assert.equal(esm.status, 0, esm.stderr);
  assert.equal(esm.stdout.trim(), '0 function');

  const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
  const doctor = run(npx, ['--offline', 'genai-electron-rs', 'doctor'], { cwd: app, env });
  assert.equal(doctor.status, 0, `${doctor.stdout}\n${doctor.stderr}`);
  assert.match(doctor.stdout, new RegExp(`genai-electron-rs ${main.version.replace(/\./g, '\\.')}`));
  assert.match(doctor.stdout, /^Storage\n {2}(.*)$/m);
  assert.ok(doctor.stdout.includes(userData), 'doctor reports the storage in use');
  const list = run(npx, ['--offline', 'genai-electron-rs', 'list', '--json'], { cwd: app, env });
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), []);
});
