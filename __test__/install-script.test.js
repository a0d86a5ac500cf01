'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** A package folder as a registry install lays it out: scripts, no Cargo.toml, no sources. */
function installedLayout(withAddon) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-installed-'));
  fs.mkdirSync(path.join(dir, 'scripts'));
  for (const f of ['build.js', 'env.js', 'platform.js']) fs.copyFileSync(path.join(__dirname, '..', 'scripts', f), path.join(dir, 'scripts', f));
  if (withAddon) fs.writeFileSync(path.join(dir, 'genai-electron-rs.linux-x64-gnu.node'), 'prebuilt');
  return dir;
}

test('the install script uses a shipped prebuilt addon and builds nothing', () => {
  const dir = installedLayout(true);
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'build.js')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('the install script explains a platform without a prebuilt addon', () => {
  const dir = installedLayout(false);
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'build.js')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no prebuilt native addon for/);
});

test('the install script accepts this platform\'s installed addon package and builds nothing', () => {
  const { hostSuffix, packageName } = require('../scripts/platform.js');
  const dir = installedLayout(false);
  // As npm lays it out: the optional dependency in node_modules next to (or above) the package.
  const pkg = path.join(dir, 'node_modules', packageName(hostSuffix()));
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: packageName(hostSuffix()), version: '0.0.0' }));
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'build.js')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
