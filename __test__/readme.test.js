'use strict';
/**
 * README's first screen works as written: the quick-start code block runs as an ES module of an
 * app that installed the package (node_modules/genai-electron-rs), against the local Hugging
 * Face-like server and the fake sd-server, and the command lines shown run with the CLI.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startHfServer } = require('./fixtures/hf-server.js');
const { tempRoot } = require('./helpers/storage.js');
const { ROOT, FAKE_SD, serveKlein, runCli } = require('./helpers/cli.js');

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const FIRST_SCREEN = README.slice(0, README.indexOf('\n## ', README.indexOf('## Quick start')));
let srv;

before(async () => {
  srv = await startHfServer();
  serveKlein(srv, { quant: 'Q4_0' });
});

after(async () => {
  await srv.close();
});

/** The fenced blocks of a language in `text`, in order. */
function blocks(text, lang) {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);
}

/** An app folder that has the package installed (a link to this checkout) and its own userData. */
function app() {
  const dir = tempRoot('genai-readme-app-');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'genai-electron-rs'), 'junction');
  // The served model files are headers only: the fake sd programs generate from them when told so.
  const env = { HF_ENDPOINT: srv.url, GENAI_ELECTRON_USER_DATA: path.join(dir, 'data'), GENAI_ELECTRON_SD_BINARY_DIR: FAKE_SD, FAKE_SD_HEADER_ONLY: '1' };
  return { dir, env: { ...process.env, ...env } };
}

function pngSize(file) {
  const buf = fs.readFileSync(file);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

test('the first screen has the set-up commands, a ten-line example, the CLI in three lines and the links', () => {
  const [setup, cli] = blocks(FIRST_SCREEN, 'sh');
  assert.match(setup, /^npm install genai-electron-rs$/m);
  assert.equal(setup.trim().split('\n').length, 2);
  assert.equal(cli.trim().split('\n').length, 3);
  const code = blocks(FIRST_SCREEN, 'js')[0];
  assert.ok(code.trim().split('\n').length <= 10, code);
  for (const link of ['(#api)', '(docs/migration.md)', '(#troubleshooting)']) assert.ok(FIRST_SCREEN.includes(link), link);
  assert.match(README, /^## API$/m);
  assert.match(README, /^### Troubleshooting$/m);
});

test('the quick-start code runs as written and saves the image', async () => {
  const marker = FIRST_SCREEN.indexOf('<!-- quick-start');
  assert.ok(marker > 0, 'the quick-start block is marked');
  const code = blocks(FIRST_SCREEN.slice(marker), 'js')[0];
  const { dir, env } = app();
  fs.writeFileSync(path.join(dir, 'quick-start.mjs'), code);
  const r = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['quick-start.mjs'], { cwd: dir, env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (status) => resolve({ status, out }));
  });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^100 %$/m);
  assert.deepEqual(pngSize(path.join(dir, 'lighthouse.png')), { width: 768, height: 768 });
});

test('the command lines of the first screen run', async () => {
  const { dir, env } = app();
  const lines = blocks(FIRST_SCREEN, 'sh')
    .flatMap((b) => b.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npx genai-electron-rs ') && !l.includes(' serve '));
  assert.deepEqual(lines.map((l) => l.split(' ')[2]), ['doctor', 'pull', 'generate']);
  for (const line of lines) {
    const args = [...line.slice('npx genai-electron-rs '.length).matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
    // Asynchronously: the test server runs in this process.
    const r = await runCli(args, { cwd: dir, env });
    assert.equal(r.code, 0, `${line}\n${r.stdout}${r.stderr}`);
  }
  assert.deepEqual(pngSize(path.join(dir, 'lighthouse.png')), { width: 768, height: 768 });
});
