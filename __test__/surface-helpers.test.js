'use strict';
/**
 * The package root's helpers and constants against genai-electron 0.26 itself: the same inputs
 * give the same outputs (pure helpers, constants, file helpers and their errors, the raw GGUF
 * parse of local and remote files), plus what cannot be compared (ports, /health).
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const g = require('..');
const { reference, normalize } = require('./helpers/reference.js');
const { tempDir } = require('./helpers/system.js');
const { buildGguf, llamaGguf } = require('./helpers/gguf.js');
const { startHfServer } = require('./fixtures/hf-server.js');

const GIB = 1024 ** 3;
const HF_URLS = [
  ['org/repo', 'model.gguf', undefined],
  ['org/repo', 'dir/sub dir/m#1.gguf', 'v1.0'],
  ['repo', 'a/b.safetensors', 'refs/pr/1'],
];
const PARSE = [
  'https://huggingface.co/org/repo/resolve/main/model.gguf',
  'https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/dir/m%231.gguf',
  'https://huggingface.co/gpt2/resolve/main/config.json',
  'https://huggingface.co/org/repo/blob/main/model.gguf',
  'https://example.com/org/repo/resolve/main/model.gguf',
  'not a url',
  'https://huggingface.co/org/repo',
];
const BYTES = [[0], [1], [1023], [1024], [1536], [1536, 0], [10 * GIB + 12345, 3], [5e15], [123456789, -1]];
const FILENAMES = ['a<b>c:d"e/f\\g|h?i*j.gguf', '  many   spaces\there ', 'ctrl\x01\x1fchars', 'plain.gguf'];
const CONTEXTS = [100, 2048, 2100, 4097, 8191, 16385, 40000, 131072, 1e6];
const REASONING = ['Qwen3-8B-Q4.gguf', 'DeepSeek-R1-Distill.gguf', 'gpt-oss-20b.gguf', 'llama-3.gguf'];
const HOSTS = [undefined, '', '0.0.0.0', '::', '::1', '127.0.0.1', 'localhost'];
const THREADS = [1, 2, 3, 8, 9, 16, 17, 64];
const KV_MODELS = [
  { size: 4 * GIB },
  { size: 40 * GIB },
  { size: 70 * GIB, ggufMetadata: { architecture: 'llama', block_count: 80, attention_head_count: 64, attention_head_count_kv: 8, embedding_length: 8192 } },
  { size: 5 * GIB, ggufMetadata: { architecture: 'gemma3', block_count: 26, attention_head_count: [8, 8], attention_head_count_kv: [4, 4], attention_key_length: 256 } },
  { size: 5 * GIB, ggufMetadata: { architecture: 'qwen3', block_count: 36, raw: { 'qwen3.attention.head_count_kv': 8, 'qwen3.attention.key_length': 128 } } },
].map((m) => ({ id: 'm', name: 'm', type: 'llm', path: '/m', downloadedAt: '', source: { type: 'url', url: 'http://127.0.0.1/m' }, ...m }));
const CACHE_TYPES = [[], ['q8_0'], ['q4_0', 'q5_1'], ['bf16', 'iq4_nl']];
const CONSTANTS = [
  'DEFAULT_PORTS',
  'DEFAULT_TIMEOUTS',
  'DIFFUSION_VRAM_THRESHOLDS',
  'DIFFUSION_COMPONENT_FLAGS',
  'DIFFUSION_COMPONENT_ORDER',
  'DIFFUSION_CALIBRATION_DEFAULTS',
  'DIFFUSION_BACKEND_DEFAULTS',
  'KV_CACHE_BYTES_PER_ELEMENT',
  'CONTEXT_GRANULARITY_LADDER',
  'REASONING_MODEL_PATTERNS',
];

/** What each pure helper returns for the inputs above (run here and in genai-electron). */
const PURE = `(ge) => ({
  hf: ${JSON.stringify(HF_URLS)}.map(([r, f, v]) => ge.getHuggingFaceURL(r, f, v ?? undefined)),
  parse: ${JSON.stringify(PARSE)}.map((u) => ge.parseHuggingFaceURL(u)),
  bytes: ${JSON.stringify(BYTES)}.map((a) => ge.formatBytes(...a)),
  names: ${JSON.stringify(FILENAMES)}.map((f) => ge.sanitizeFilename(f)),
  contexts: ${JSON.stringify(CONTEXTS)}.map((c) => ge.floorContextToGranularity(c)),
  reasoning: ${JSON.stringify(REASONING)}.map((f) => ge.detectReasoningSupport(f)),
  hosts: ${JSON.stringify(HOSTS)}.map((h) => ge.normalizeHealthHost(h ?? undefined)),
  threads: ${JSON.stringify(THREADS)}.map((c) => ge.getRecommendedThreads(c)),
  kv: ${JSON.stringify(KV_MODELS)}.flatMap((m) => ${JSON.stringify(CACHE_TYPES)}.map((t) => ge.estimateKVBytesPerToken(m, ...t))),
  arch: [ge.getArchField({ 'general.architecture': 'llama', 'llama.block_count': 22 }, 'block_count'), ge.getArchField({}, 'block_count')],
  platform: [ge.getPlatform(), ge.getArchitecture(), ge.getPlatformKey(), ge.isMac(), ge.isWindows(), ge.isLinux(), ge.isAppleSilicon()],
  cpu: ge.getCPUInfo(),
  threadsHere: ge.getRecommendedThreads(),
  paths: [ge.getBinaryPath('diffusion', 'sd-server'), ge.getBinaryPath('llama', 'llama-server'), ge.PATHS.loras, ge.getModelFilePath('llm', 'x.gguf')],
  constants: Object.fromEntries(${JSON.stringify(CONSTANTS)}.map((k) => [k, ge[k]])),
})`;

let root;
let hf;
let gguf;
let ggufPath;
before(async () => {
  root = tempDir('genai-rs-surface-');
  g.configure({ userDataPath: root });
  gguf = Buffer.concat([
    llamaGguf(),
    // Trailing zero data is not part of the header; the parse must not read it.
    Buffer.alloc(0),
  ]);
  ggufPath = path.join(root, 'tiny.gguf');
  fs.writeFileSync(ggufPath, gguf);
  hf = await startHfServer();
});
after(async () => {
  await hf.close();
});

test('pure helpers, paths and constants equal genai-electron 0.26', async () => {
  const theirs = await reference(`return (${PURE})(ge);`, { env: { STUB_ELECTRON_USER_DATA: root } });
  const ours = normalize(eval(PURE)(g)); // eslint-disable-line no-eval
  for (const key of Object.keys(theirs)) assert.deepEqual(ours[key], theirs[key], key);
  assert.ok(Object.isFrozen(g.DIFFUSION_BACKEND_DEFAULTS) && Object.isFrozen(g.DIFFUSION_CALIBRATION_DEFAULTS.combos[0]));
});

test('generateId has genai-electron’s form and does not repeat', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => g.generateId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^gen_\d{13}_[0-9a-z]{1,9}$/);
});

test('checksums and file helpers: same results and error messages as genai-electron 0.26', async () => {
  const dir = path.join(root, 'files');
  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
  const file = path.join(dir, 'a', 'data.bin');
  const source = path.join(root, 'source.bin');
  fs.writeFileSync(source, data);
  const body = (lib) => `
    const dir = ${JSON.stringify(dir)};
    const lib = ${lib};
    await lib.ensureDirectory(dir + '/a');
    await lib.ensureDirectory(dir + '/a');
    ${lib === 'ge' ? `(await import('node:fs')).copyFileSync(${JSON.stringify(source)}, dir + '/a/data.bin');` : ''}
    const out = {};
    const catching = async (k, f) => { try { out[k] = await f(); } catch (e) { out[k] = { error: e.name, code: e.code, message: e.message }; } };
    await catching('exists', () => lib.fileExists(dir + '/a/data.bin'));
    await catching('size', () => lib.getFileSize(dir + '/a/data.bin'));
    await catching('sha', () => lib.calculateSHA256(dir + '/a/data.bin'));
    await catching('checksum', () => lib.calculateChecksum(dir + '/a/data.bin'));
    await catching('verifyPrefixed', async () => lib.verifyChecksum(dir + '/a/data.bin', 'sha256:' + out.sha));
    await catching('verifyBare', async () => lib.verifyChecksum(dir + '/a/data.bin', out.sha));
    await catching('verifyWrong', () => lib.verifyChecksum(dir + '/a/data.bin', '0'.repeat(64)));
    await catching('move', () => lib.moveFile(dir + '/a/data.bin', dir + '/a/moved.bin'));
    await catching('movedExists', () => lib.fileExists(dir + '/a/moved.bin'));
    await catching('delete', () => lib.deleteFile(dir + '/a/moved.bin'));
    await catching('missingExists', () => lib.fileExists(dir + '/a/moved.bin'));
    await catching('missingSize', () => lib.getFileSize(dir + '/nope'));
    await catching('missingDelete', () => lib.deleteFile(dir + '/nope'));
    await catching('missingMove', () => lib.moveFile(dir + '/nope', dir + '/nope2'));
    await catching('missingSha', () => lib.calculateSHA256(dir + '/nope'));
    await catching('dirUnderFile', async () => { (await import('node:fs')).writeFileSync(dir + '/f', ''); return lib.ensureDirectory(dir + '/f/sub'); });
    return out;`;
  const theirs = await reference(body('ge'));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'a'), { recursive: true });
  fs.writeFileSync(file, data);
  const ours = await eval(`(async (g) => { ${body('g')} })`)(g); // eslint-disable-line no-eval
  assert.equal(ours.sha, crypto.createHash('sha256').update(data).digest('hex'));
  assert.deepEqual(normalize(ours), theirs);
  assert.equal(ours.missingSize.error, 'FileSystemError');
});

test('fetchLocalGGUFMetadata and fetchGGUFMetadata return 0.26’s raw shape, BigInt included', async () => {
  const v2 = path.join(root, 'v2.gguf');
  fs.writeFileSync(
    v2,
    buildGguf({
      version: 2,
      kv: [
        ['general.architecture', 'string', 'gemma3'],
        ['gemma3.context_length', 'u64', 131072],
        ['gemma3.attention.sliding_window', ['array', 'i32'], [1024, 0]],
        ['general.size', 'i64', -5],
        ['general.ratio', 'f64', 0.25],
        ['general.flag', 'bool', true],
        ['tokenizer.ggml.ids', ['array', 'u64'], [1, 2]],
      ],
      tensors: [{ name: 'blk.0.attn_q.weight', dims: [4, 2, 1], type: 1, offset: 64 }],
      dataBytes: 128,
    }),
  );
  const remote = hf.addFile('org/tiny', 'tiny.gguf', gguf);
  const theirs = await reference(`
    return [await ge.fetchLocalGGUFMetadata(${JSON.stringify(ggufPath)}), await ge.fetchLocalGGUFMetadata(${JSON.stringify(v2)}),
            await ge.fetchGGUFMetadata(${JSON.stringify(remote.url)})];`);
  const ours = [await g.fetchLocalGGUFMetadata(ggufPath), await g.fetchLocalGGUFMetadata(v2), await g.fetchGGUFMetadata(remote.url)];
  assert.equal(typeof ours[0].metadata.tensor_count, 'bigint');
  assert.equal(typeof ours[1].metadata['gemma3.context_length'], 'bigint');
  assert.equal(typeof ours[1].tensorInfos[0].shape[0], 'bigint');
  assert.deepEqual(normalize(ours), theirs);
  assert.deepEqual(Object.keys(ours[1].metadata), Object.keys(theirs[1].metadata), 'keys in file order');
  assert.equal(g.getArchField(ours[1].metadata, 'sliding_window'), undefined);
  assert.deepEqual(g.getArchField(ours[1].metadata, 'attention.sliding_window'), [1024, 0]);
  // The processed form keeps its own name.
  const processed = await g.fetchLocalGGUFModelMetadata(ggufPath);
  assert.equal(processed.architecture, 'llama');
  assert.equal(processed.block_count, 22);
});

test('GGUF readers fail with DownloadError like genai-electron 0.26', async () => {
  const bad = path.join(root, 'bad.gguf');
  fs.writeFileSync(bad, 'not a gguf file at all');
  await assert.rejects(g.fetchLocalGGUFMetadata(bad), (e) => e instanceof g.DownloadError && /^Download failed: Failed to read GGUF metadata from local file: /.test(e.message));
  await assert.rejects(g.fetchLocalGGUFMetadata(path.join(root, 'missing.gguf')), g.DownloadError);
  await assert.rejects(g.fetchGGUFMetadata(`${hf.url}/org/none/resolve/main/x.gguf`), (e) => e instanceof g.DownloadError && /^Download failed: Failed to fetch GGUF metadata from URL: /.test(e.message));
});

test('findFreePort, isPortBindable', async () => {
  const port = await g.findFreePort();
  assert.ok(Number.isInteger(port) && port > 0);
  assert.equal(await g.isPortBindable(port), true);
  const server = net.createServer();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    assert.equal(await g.isPortBindable(port), false);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('checkHealth, isServerResponding and waitForHealthy against a local server', async () => {
  let answers = [];
  const server = http.createServer((req, res) => {
    const next = answers.shift() || [200, { status: 'ok' }];
    res.writeHead(next[0], { 'Content-Type': 'application/json' });
    res.end(typeof next[1] === 'string' ? next[1] : JSON.stringify(next[1]));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  try {
    answers = [[200, { status: 'ok', model: 'x' }], [503, { status: 'loading' }], [200, 'not json'], [200, { status: 'weird' }]];
    assert.deepEqual(await g.checkHealth(port), { status: 'ok', model: 'x' });
    assert.deepEqual(await g.checkHealth(port), { status: 'error' });
    assert.deepEqual(await g.checkHealth(port), { status: 'ok' });
    assert.deepEqual(await g.checkHealth(port), { status: 'unknown' });
    assert.equal(await g.isServerResponding(port), true);
    answers = [[200, { status: 'loading' }], [200, { status: 'loading' }]];
    await g.waitForHealthy(port, 5000, 1, 2);
    assert.deepEqual(answers, [], 'polled until ok');
    const free = await g.findFreePort();
    assert.deepEqual(await g.checkHealth(free, 1000), { status: 'unknown' });
    assert.equal(await g.isServerResponding(free, 1000), false);
    await assert.rejects(g.waitForHealthy(free, 50, 5, 10), (e) => e instanceof g.ServerError && /health check timeout after 50ms/.test(e.message));
    const ac = new AbortController();
    const waiting = g.waitForHealthy(free, 60000, 5, 10, '127.0.0.1', ac.signal);
    ac.abort(new Error('stop waiting'));
    await assert.rejects(waiting, /stop waiting/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('helpers refuse bad arguments with TypeError', async () => {
  await assert.rejects(g.calculateSHA256(''), TypeError);
  await assert.rejects(g.fetchGGUFMetadata(42), TypeError);
  assert.throws(() => g.getBinaryPath('sd', 'x'), TypeError);
  assert.throws(() => g.getHuggingFaceURL('r', 'f', ' '), TypeError);
  assert.throws(() => g.estimateKVBytesPerToken({ size: 1 }, 'q9'), TypeError);
});
