'use strict';
/**
 * Helpers for the command-line and README suites: the Flux 2 Klein preset's three files (tiny, of
 * the real shapes) served by the local Hugging Face-like server, and the CLI run as a child process.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const files = require('../fixtures/fake-sd/lib/model-files.js');
const { tempRoot } = require('./storage.js');

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'genai-electron-rs.js');
const FAKE_SD = path.join(__dirname, '..', 'fixtures', 'fake-sd');

/** Serves the files of the `flux-2-klein-4b-q80` (or `quant: 'Q4_0'`) preset; FileHandles by role. */
function serveKlein(srv, { quant = 'Q8_0' } = {}) {
  const scratch = tempRoot('genai-klein-src-');
  const add = (repo, file, write, opts) => {
    const p = write(path.join(scratch, repo.replace('/', '_'), path.basename(file)), opts);
    return srv.addFile(repo, file, fs.readFileSync(p));
  };
  return {
    diffusion_model: add('leejet/FLUX.2-klein-4B-GGUF', `flux-2-klein-4b-${quant}.gguf`, files.writeFlux2KleinDit),
    llm: add('unsloth/Qwen3-4B-GGUF', 'Qwen3-4B-Q4_0.gguf', files.writeQwen3, { size: '4b' }),
    vae: add('Comfy-Org/flux2-dev', 'split_files/vae/flux2-vae.safetensors', files.writeFlux2Vae),
  };
}

/**
 * Runs the CLI; resolves `{ code, signal, stdout, stderr }` when it exits. `onStdout(text, child)`
 * sees the output as it arrives (to interrupt at the right moment).
 */
function runCli(args, { env = {}, cwd, onStdout } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (onStdout) onStdout(stdout, child);
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

module.exports = { ROOT, CLI, FAKE_SD, serveKlein, runCli };
