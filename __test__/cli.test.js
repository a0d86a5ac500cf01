'use strict';
/**
 * The command-line tool end to end, as child processes: pull of a preset from the local Hugging
 * Face-like server (HF_ENDPOINT), interrupted with SIGINT and resumed; generate and serve with the
 * fake sd programs; --json output; and every error path exiting non-zero with its code.
 */
const { test, before, after } = require('node:test');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startHfServer } = require('./fixtures/hf-server.js');
const { tempRoot, fluxRecord } = require('./helpers/storage.js');
const { FAKE_SD, serveKlein, runCli } = require('./helpers/cli.js');
const lib = require('..');

const { PRESETS } = lib;

const ID = 'flux-2-klein-4b-q80';
let srv;
let klein;
let userData; // holds the pulled Klein model for the tests after the pull

before(async () => {
  srv = await startHfServer();
  klein = serveKlein(srv);
  userData = tempRoot('genai-cli-');
});

after(async () => {
  await srv.close();
});

/** The served model files are headers only: the fake sd programs generate from them when told so. */
function env(extra = {}) {
  return { HF_ENDPOINT: srv.url, GENAI_ELECTRON_USER_DATA: userData, GENAI_ELECTRON_SD_BINARY_DIR: FAKE_SD, FAKE_SD_HEADER_ONLY: '1', ...extra };
}

function listFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map((f) => path.join(dir, f));
}

function pngSize(file) {
  const buf = fs.readFileSync(file);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function assertError(r, code, exitCode = 1) {
  assert.equal(r.code, exitCode, `exit code\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^error ${code}: `, 'm'), r.stderr);
}

test('presets --json lists the exported catalogue', async () => {
  const r = await runCli(['presets', '--json'], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).map((p) => p.id), PRESETS.map((p) => p.id));
});

test('pull of a preset: interrupted with SIGINT keeps the partial file, the next pull resumes it', async () => {
  const fault = srv.fault(klein.diffusion_model.cdnPath, { slow: 2048 });
  let interrupted = false;
  // The DiT's bytes go to its .partial (the other files download beside it): interrupt once that
  // file has been receiving for a second, so there is something to resume.
  const ditPartial = path.join(userData, 'models', 'diffusion', 'flux-2-klein', 'flux-2-klein-4b-Q8_0.gguf.partial');
  let partialSince = 0;
  const first = await runCli(['pull', ID, '--progress', 'bar'], {
    env: env(),
    onStdout: (out, child) => {
      if (!partialSince && fs.existsSync(ditPartial)) partialSince = Date.now();
      const receiving = partialSince && Date.now() - partialSince >= 1000;
      if (!interrupted && receiving && /\] +\d+%  [1-9][\d.]* (B|KiB) \//.test(out)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    },
  });
  fault.remove();
  assert.ok(interrupted, `no progress seen:\n${first.stdout}\n${first.stderr}`);
  assert.equal(first.code, 130, first.stderr);
  assert.match(first.stderr, /run the same command again to resume/);
  const partials = listFiles(path.join(userData, 'models')).filter((f) => f.endsWith('.partial'));
  assert.equal(partials.length, 1, `one partial file kept: ${partials}`);
  const kept = fs.statSync(partials[0]).size;
  assert.ok(kept > 0);
  assert.equal(fs.existsSync(path.join(userData, 'models', 'diffusion', `${ID}.json`)), false, 'no record yet');

  srv.resetStats();
  const second = await runCli(['pull', ID, '--progress', 'bar'], { env: env() });
  assert.equal(second.code, 0, second.stderr);
  const ranges = srv.statsFor(klein.diffusion_model.cdnPath).ranges;
  assert.ok(
    ranges.some((r) => r && Number(/^bytes=(\d+)-/.exec(r)[1]) > 0),
    `the DiT download resumed with a Range request (ranges: ${JSON.stringify(ranges)}, kept ${kept})`,
  );
  // Per component: a header for each, then the bar redrawn in place; its final state is 100 %.
  assert.match(second.stdout, /\[1\/3\] diffusion_model: flux-2-klein-4b-Q8_0\.gguf/);
  assert.match(second.stdout, /\[3\/3\] vae: /);
  const barLines = second.stdout.split('\n').filter((l) => l.includes('\r'));
  const final = barLines[barLines.length - 1].split('\r').pop();
  const total = Object.values(klein).reduce((a, f) => a + f.size, 0);
  assert.ok(total > 1024 && total < 1048576, 'the fixture files total some KiB');
  const kib = `${(total / 1024).toFixed(1)} KiB`;
  // The first pull completed the text encoder and VAE beside the DiT: this one moves only the DiT.
  const dit = `${(klein.diffusion_model.size / 1024).toFixed(1)} KiB`;
  assert.match(final, new RegExp(`^\\[#{24}\\] 100%  ${dit} / ${dit}  [\\d.]+ (B|KiB|MiB)/s  done\\s*$`), JSON.stringify(final));
  assert.match(second.stdout, new RegExp(`Downloaded ${ID}: ${kib} in `));
  assert.equal(listFiles(path.join(userData, 'models')).filter((f) => f.endsWith('.partial')).length, 0);
});

test('without a terminal: no bar redraws and no colour codes, and --json output parses', async () => {
  const list = await runCli(['list'], { env: env() });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${ID} +diffusion`, 'm'));
  for (const r of [list]) assert.doesNotMatch(r.stdout, /[\r\x1b]/);

  const json = await runCli(['list', '--json'], { env: env() });
  assert.deepEqual(JSON.parse(json.stdout).map((m) => m.id), [ID]);
  // One model sharing nothing: what is on disk is its size.
  const [listed] = JSON.parse(json.stdout);
  assert.equal(listed.sharedSize, 0);
  assert.match(list.stdout, new RegExp(`^1 model, ${(listed.size / 1024).toFixed(1)} KiB on disk$`, 'm'));
  const info = JSON.parse((await runCli(['info', ID, '--json'], { env: env() })).stdout);
  assert.deepEqual(Object.keys(info.components).sort(), ['diffusion_model', 'llm', 'vae']);
  const verify = await runCli(['verify', ID, '--json'], { env: env() });
  assert.equal(verify.code, 0, verify.stderr);
  assert.deepEqual(JSON.parse(verify.stdout), { id: ID, valid: true });
  const doctor = await runCli(['doctor', '--json'], { env: env() });
  assert.equal(doctor.code, 0, doctor.stderr);
  const report = JSON.parse(doctor.stdout);
  assert.equal(report.storage.userDataPath, userData);
  assert.equal(report.binaries.server.path, path.join(FAKE_SD, 'sd-server'));
  const d = report.diffusion.find((x) => x.modelId === ID);
  assert.equal(d.flags.diffusionFlashAttention.on, true, 'Klein has an llm component');
  assert.equal(report.provisioning.diffusion.action, 'override');
  assert.equal(report.provisioning.llama.pinned, lib.BINARY_VERSIONS.llamaServer.version);
  const plainDoctor = await runCli(['doctor'], { env: env() });
  assert.match(plainDoctor.stdout, /What diffusionServer\.start\(\) would use/);
  assert.match(plainDoctor.stdout, /Binary provisioning/);
  assert.doesNotMatch(plainDoctor.stdout, /[\r\x1b]/);
});

test('generate writes a PNG with the preset settings and shows a step bar', async () => {
  const out = path.join(userData, 'out', 'cat.png');
  const r = await runCli(['generate', ID, 'a cat', '-o', out, '--progress', 'bar'], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(pngSize(out), { width: 768, height: 768 }, 'the preset size');
  assert.match(r.stdout, /diffusion +\[#{24}\] 100%  step 4\/4/, 'the preset steps');
  assert.match(r.stdout, /Saved .*cat\.png \(768x768, seed \d+/);

  const small = path.join(userData, 'out', 'small.png');
  const j = await runCli(['generate', ID, 'a dog', '-o', small, '--width', '256', '--height', '128', '--steps', '2', '--json'], { env: env() });
  assert.equal(j.code, 0, j.stderr);
  const summary = JSON.parse(j.stdout);
  assert.deepEqual([summary.width, summary.height], [256, 128]);
  assert.deepEqual(pngSize(small), { width: 256, height: 128 });
});

test('Ctrl-C during generate cancels the image, stops sd-server and writes nothing', async () => {
  const out = path.join(userData, 'out', 'cancelled.png');
  const log = path.join(userData, 'logs', 'diffusion-server.log');
  const before = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').length : 0;
  let sent = false;
  const r = await runCli(['generate', ID, 'slow', '-o', out, '--steps', '400', '--progress', 'bar'], {
    env: env({ FAKE_SD_STEP_MS: '50' }),
    onStdout: (text, child) => {
      if (!sent && /step [2-9]\/400/.test(text)) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  assert.ok(sent, r.stdout);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /Interrupted: stopping cleanly/);
  assert.equal(fs.existsSync(out), false, 'no image written');
  const pids = [...fs.readFileSync(log, 'utf8').slice(before).matchAll(/sd-server ready \(pid (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 1);
  assert.throws(() => process.kill(pids[0], 0), { code: 'ESRCH' }, 'sd-server is gone');
});

test('serve answers /health and stops on SIGINT with no process left', async () => {
  let announced = null;
  const r = await runCli(['serve', ID, '--port', 'auto', '--json'], {
    env: env(),
    onStdout: (out, child) => {
      if (announced || !out.includes('\n')) return;
      announced = JSON.parse(out.split('\n')[0]);
      fetch(`${announced.url}/health`)
        .then(async (res) => {
          announced.health = { status: res.status, body: await res.json() };
        })
        .catch((err) => {
          announced.health = { error: err.message };
        })
        .finally(() => child.kill('SIGINT'));
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(announced, r.stdout);
  assert.equal(announced.server, 'diffusion');
  assert.match(announced.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(announced.health.status, 200, JSON.stringify(announced.health));
  assert.ok(Number.isInteger(announced.pid), 'sd-server pid reported');
  assert.throws(() => process.kill(announced.pid, 0), { code: 'ESRCH' }, 'sd-server is gone');
  await assert.rejects(fetch(`${announced.url}/health`), 'the HTTP API is closed');
});

test('every error path exits non-zero with its code', async () => {
  assertError(await runCli(['info', 'no-such-model'], { env: env() }), 'MODEL_NOT_FOUND');
  assertError(await runCli(['verify', 'no-such-model'], { env: env() }), 'MODEL_NOT_FOUND');
  assertError(await runCli(['rm', 'no-such-model'], { env: env() }), 'MODEL_NOT_FOUND');
  assertError(await runCli(['serve', 'no-such-model'], { env: env() }), 'MODEL_NOT_FOUND');
  assertError(await runCli(['pull', 'no-such-preset'], { env: env() }), 'PRESET_NOT_FOUND');
  assertError(await runCli(['pull', 'sdxl-split'], { env: env() }), 'INVALID_ARGUMENT', 2);
  assertError(await runCli(['bogus'], { env: env() }), 'UNKNOWN_COMMAND', 2);
  assertError(await runCli([], { env: env() }), 'INVALID_ARGUMENT', 2);
  assertError(await runCli(['list', '--nope'], { env: env() }), 'INVALID_ARGUMENT', 2);
  assertError(await runCli(['list', '--type', 'video'], { env: env() }), 'INVALID_ARGUMENT', 2);
  assertError(await runCli(['generate', ID, 'a cat'], { env: env() }), 'INVALID_ARGUMENT', 2);
  assertError(await runCli(['generate', ID, 'a cat', '-o', 'x.png', '--steps', 'many'], { env: env() }), 'INVALID_ARGUMENT', 2);

  const bad = path.join(userData, 'bad.json');
  fs.writeFileSync(bad, '{ not json');
  assertError(await runCli(['pull', bad], { env: env() }), 'INVALID_CONFIG');

  // A file missing on the server: the library's DownloadError code comes through.
  const missing = path.join(userData, 'missing.json');
  fs.writeFileSync(missing, JSON.stringify({ source: 'huggingface', repo: 'org/none', file: 'none.gguf', name: 'none', type: 'llm' }));
  assertError(await runCli(['pull', missing], { env: env() }), 'DOWNLOAD_FAILED');

  // No sd program anywhere: start() fails with the library's BinaryError code.
  const noBinary = await runCli(['generate', ID, 'a cat', '-o', path.join(userData, 'nb.png')], {
    env: env({ GENAI_ELECTRON_SD_BINARY_DIR: path.join(userData, 'empty') }),
  });
  assertError(noBinary, 'BINARY_ERROR');

  // --json turns the error into JSON on stderr, still non-zero.
  const j = await runCli(['info', 'no-such-model', '--json'], { env: env() });
  assert.equal(j.code, 1);
  assert.equal(JSON.parse(j.stderr).error.code, 'MODEL_NOT_FOUND');

  // A model whose file was damaged does not verify: the library's ChecksumError, or a plain failure.
  const record = JSON.parse(fs.readFileSync(path.join(userData, 'models', 'diffusion', `${ID}.json`), 'utf8'));
  const vae = fs.readFileSync(record.components.vae.path);
  fs.appendFileSync(record.components.vae.path, 'x');
  assertError(await runCli(['verify', ID], { env: env() }), 'CHECKSUM_ERROR');
  fs.rmSync(record.components.vae.path);
  assertError(await runCli(['verify', ID], { env: env() }), 'FILE_SYSTEM_ERROR');
  fs.writeFileSync(record.components.vae.path, vae);
  // A record with no checksum at all cannot be verified: said, and non-zero.
  const bare = tempRoot('genai-cli-bare-');
  fluxRecord(bare, { id: 'bare', withChecksums: false });
  assertError(await runCli(['verify', 'bare'], { env: env({ GENAI_ELECTRON_USER_DATA: bare }) }), 'VERIFY_FAILED');
});

/** Pulls a small LLM (a Qwen3 GGUF of the real shape) into its own userData; returns [userData, id]. */
async function pullLlm() {
  const ud = tempRoot('genai-cli-llm-');
  const f = srv.addFile('org/chat', 'chat.gguf', fs.readFileSync(path.join(userData, 'models', 'diffusion', 'flux-2-klein', 'Qwen3-4B-Q4_0.gguf')));
  const cfg = path.join(ud, 'chat.json');
  fs.writeFileSync(cfg, JSON.stringify({ source: 'huggingface', repo: f.repo, file: f.file, name: 'chat', type: 'llm' }));
  const pulled = await runCli(['pull', cfg, '--json'], { env: env({ GENAI_ELECTRON_USER_DATA: ud }) });
  assert.equal(pulled.code, 0, pulled.stderr);
  return [ud, JSON.parse(pulled.stdout).id];
}

test('serve of an LLM runs llama-server: /health answers, SIGINT stops it', async () => {
  const [ud, id] = await pullLlm();
  const fakeLlama = path.join(__dirname, 'fixtures', 'fake-llama');
  let announced = null;
  const r = await runCli(['serve', id, '--port', 'auto', '--json'], {
    env: env({ GENAI_ELECTRON_USER_DATA: ud, GENAI_ELECTRON_LLAMA_BINARY_DIR: fakeLlama }),
    onStdout: (out, child) => {
      if (announced || !out.includes('\n')) return;
      announced = JSON.parse(out.split('\n')[0]);
      fetch(`${announced.url}/health`)
        .then((res) => (announced.health = res.status))
        .catch((err) => (announced.health = err.message))
        .finally(() => child.kill('SIGINT'));
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(announced.server, 'llama');
  assert.equal(announced.health, 200);
  assert.ok(Number.isInteger(announced.pid), 'llama-server pid reported');
  assert.throws(() => process.kill(announced.pid, 0), { code: 'ESRCH' }, 'llama-server is gone');
});

test('doctor says how start() gets each program: download, installed build, changed build', async () => {
  const ud = tempRoot('genai-cli-doc-');
  const bare = { GENAI_ELECTRON_USER_DATA: ud, GENAI_ELECTRON_SD_BINARY_DIR: '', GENAI_ELECTRON_LLAMA_BINARY_DIR: '' };
  const report = async () => {
    const r = await runCli(['doctor', '--json'], { env: env(bare) });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).provisioning;
  };
  let p = await report();
  assert.equal(p.diffusion.action, 'download');
  assert.equal(p.diffusion.pinned, lib.BINARY_VERSIONS.diffusionCpp.version);
  assert.match(p.llama.why, new RegExp(`downloads ${lib.BINARY_VERSIONS.llamaServer.version}`));
  // An install as genai-electron 0.26 records it.
  const dir = path.join(ud, 'binaries', 'llama');
  fs.mkdirSync(dir, { recursive: true });
  const exe = path.join(dir, 'llama-server');
  fs.writeFileSync(exe, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const checksum = crypto.createHash('sha256').update(fs.readFileSync(exe)).digest('hex');
  const rec = { variant: 'cpu', checksum, validatedAt: new Date().toISOString(), phase1Passed: true, phase2Passed: true, version: lib.BINARY_VERSIONS.llamaServer.version };
  fs.writeFileSync(path.join(dir, '.validation.json'), JSON.stringify(rec));
  p = await report();
  assert.equal(p.llama.action, 'installed');
  assert.equal(p.llama.installed.intact, true);
  fs.appendFileSync(exe, '# changed\n');
  p = await report();
  assert.equal(p.llama.action, 'validate');
  fs.writeFileSync(path.join(dir, '.validation.json'), JSON.stringify({ ...rec, checksum: crypto.createHash('sha256').update(fs.readFileSync(exe)).digest('hex'), version: 'b1' }));
  p = await report();
  assert.equal(p.llama.action, 'download');
  assert.match(p.llama.why, /installed build is b1/);
});
