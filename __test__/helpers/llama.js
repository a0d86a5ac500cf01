'use strict';
/**
 * Helpers for the llama-server suites: LLM records whose GGUF files exist, simulated machines,
 * the fake llama-server's argument log, and small HTTP utilities (127.0.0.1 only).
 */

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { tempRoot, writeRecord } = require('./storage.js');
const { buildGguf } = require('./gguf.js');
const { writeMachine } = require('./system.js');

const FAKE_LLAMA_DIR = path.join(__dirname, '..', 'fixtures', 'fake-llama');
const GIB = 1024 ** 3;

/** A llama-architecture GGUF header with `blocks` layers and a training context of `ctx`. */
function tinyGguf({ blocks = 2, ctx = 256, name = 'tiny-llama-test' } = {}) {
  return buildGguf({
    kv: [
      ['general.architecture', 'string', 'llama'],
      ['general.name', 'string', name],
      ['llama.block_count', 'u32', blocks],
      ['llama.context_length', 'u32', ctx],
      ['llama.embedding_length', 'u32', 64],
      ['llama.attention.head_count', 'u32', 4],
      ['llama.attention.head_count_kv', 'u32', 4],
    ],
    tensors: [{ name: 'token_embd.weight', dims: [64, 283], type: 0, offset: 0 }],
    dataBytes: 64,
  });
}

/**
 * Writes an LLM record. `size` is the record's (realistic) byte count, `gguf` the metadata the
 * record carries (what getOptimalConfig and the orchestrator read), `shards` a split GGUF.
 */
function llmRecord(root, { id = 'tiny-llm', size, ctx = 256, blocks = 2, gguf, shards, content } = {}) {
  const dir = path.join(root, 'models', 'llm');
  fs.mkdirSync(dir, { recursive: true });
  let file;
  let shardInfo;
  if (shards) {
    shardInfo = [];
    for (let i = 1; i <= shards; i++) {
      const p = path.join(dir, `${id}-0000${i}-of-0000${shards}.gguf`);
      fs.writeFileSync(p, tinyGguf({ blocks, ctx }));
      shardInfo.push({ path: p, size: fs.statSync(p).size });
    }
    file = shardInfo[0].path;
  } else {
    file = path.join(dir, `${id}.gguf`);
    fs.writeFileSync(file, content ?? tinyGguf({ blocks, ctx }));
  }
  const rec = {
    id,
    name: id,
    type: 'llm',
    size: Math.round(size ?? fs.statSync(file).size),
    path: file,
    downloadedAt: '2026-08-01T10:00:00.000Z',
    source: { type: 'url', url: `https://example.invalid/${id}.gguf` },
    ggufMetadata: gguf ?? { architecture: 'llama', block_count: blocks, context_length: ctx, embedding_length: 64, attention_head_count: 4, attention_head_count_kv: 4 },
    ...(shardInfo ? { shards: shardInfo } : {}),
  };
  writeRecord(root, rec);
  return rec;
}

/** A userData root, a simulated machine (`vramGiB` null = no GPU) and the fake binary folder. */
function setup({ ramGiB = 32, vramGiB = 24 } = {}) {
  const root = tempRoot('genai-rs-llama-');
  const machine = path.join(root, 'machine.json');
  writeMachine(machine, { ramGiB, vramGiB });
  const argsLog = path.join(root, 'llama-args.jsonl');
  return { root, machine, argsLog, binaryDir: FAKE_LLAMA_DIR, binaryPath: path.join(FAKE_LLAMA_DIR, 'llama-server') };
}

/** The argument lists the fake llama-server was started with, oldest first. */
function loggedArgs(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One HTTP request to 127.0.0.1; resolves with status, headers and the whole body. */
function request(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

module.exports = { FAKE_LLAMA_DIR, GIB, tinyGguf, llmRecord, setup, loggedArgs, processAlive, request };
