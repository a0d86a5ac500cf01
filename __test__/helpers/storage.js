'use strict';
/** Temporary userData roots and hand-built genai-electron records for tests. */

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

function tempRoot(prefix = 'genai-rs-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function writeFile(p, content) {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

function writeRecord(root, record) {
  const p = path.join(root, 'models', record.type, `${record.id}.json`);
  writeFile(p, JSON.stringify(record, null, 2));
  return p;
}

function readRecord(root, type, id) {
  return JSON.parse(fs.readFileSync(path.join(root, 'models', type, `${id}.json`), 'utf8'));
}

/**
 * A multi-component Flux 2 Klein-shaped model as genai-electron writes it, files created on disk.
 * `dir` is the shared directory name (modelDirectory) so two variants can share encoder and VAE.
 */
function fluxRecord(root, { id = 'flux-2-klein-q80', name = 'Flux 2 Klein Q8_0', dir = 'flux-2-klein', dit = 'flux-2-klein-4b-Q8_0.gguf', withChecksums = true } = {}) {
  const base = path.join(root, 'models', 'diffusion', dir);
  const files = {
    diffusion_model: [dit, Buffer.from(`dit-${dit}`)],
    llm: ['Qwen3-4B-Q4_0.gguf', Buffer.from('qwen3-4b-text-encoder')],
    vae: ['flux2-vae.safetensors', Buffer.from('flux2-vae-weights')],
  };
  const components = {};
  let size = 0;
  for (const [role, [file, content]] of Object.entries(files)) {
    const p = writeFile(path.join(base, file), content);
    size += content.length;
    components[role] = {
      path: p,
      size: content.length,
      ...(withChecksums ? { checksum: `sha256:${sha256(content)}` } : {}),
      source: { type: 'huggingface', url: `https://huggingface.co/org/repo/resolve/main/${file}`, repo: 'org/repo', file, revision: 'main' },
    };
  }
  const record = {
    id,
    name,
    type: 'diffusion',
    size,
    path: components.diffusion_model.path,
    downloadedAt: '2026-08-01T10:00:00.000Z',
    source: components.diffusion_model.source,
    components,
  };
  writeRecord(root, record);
  return record;
}

module.exports = { tempRoot, sha256, writeFile, writeRecord, readRecord, fluxRecord };
