'use strict';
/**
 * Runs code against genai-electron 0.26 (the dev dependency) in plain Node, with the stub
 * `electron` package, and brings its result back. Values cross as JSON with BigInt, RegExp and
 * Error tagged; `normalize()` puts ours through the same encoding so both compare with deepEqual.
 */

const { execFile } = require('node:child_process');
const path = require('node:path');
const { tempDir } = require('./system.js');

const REGISTER = path.join(__dirname, '..', 'fixtures', 'electron-stub', 'register.mjs');

const ENCODE = `(key, v) => typeof v === 'bigint' ? { $bigint: String(v) } : v instanceof RegExp ? { $regexp: String(v) } : v`;
const encode = eval(ENCODE); // eslint-disable-line no-eval

/** Our value encoded as the reference's is. */
function normalize(value) {
  return JSON.parse(JSON.stringify(value, encode));
}

/**
 * `body` is the body of an async function with genai-electron's root module as `ge`; its return
 * value comes back. `env` adds environment variables. Asynchronous, so servers of the calling
 * process keep answering the child.
 */
async function reference(body, { env = {} } = {}) {
  const code = `const ge = await import('genai-electron');
const out = await (async () => { ${body} })();
process.stdout.write(JSON.stringify(out === undefined ? null : out, ${ENCODE}));`;
  const stdout = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--no-warnings', '--import', REGISTER, '--input-type=module', '-e', code],
      {
        cwd: path.join(__dirname, '..', '..'),
        env: { ...process.env, STUB_ELECTRON_USER_DATA: tempDir('genai-reference-'), ...env },
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, out, stderr) => (err ? reject(new Error(`genai-electron script failed:\n${stderr}`)) : resolve(out)),
    );
  });
  return JSON.parse(stdout);
}

module.exports = { reference, normalize };
