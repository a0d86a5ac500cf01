'use strict';
// Bad input is a typed error and writes nothing; the disk-space check refuses before any byte.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { g, setup, bytes, tree, rejectsDownload } = require('./helpers/download.js');

const vae = { role: 'vae', source: 'url', url: 'http://127.0.0.1:9/v.safetensors' };
const base = { source: 'url', url: 'http://127.0.0.1:9/model.gguf', name: 'Valid Name', type: 'diffusion' };
const hfBase = { source: 'huggingface', repo: 'org/repo', file: 'model.gguf', name: 'Valid Name', type: 'llm' };

const CASES = [
  ['no source', { ...base, source: undefined }, /source is required/],
  ['unknown source', { ...base, source: 'ftp' }, /Unsupported source type: ftp/],
  ['url missing', { ...base, url: undefined }, /URL is required when source is "url"/],
  ['repo missing', { ...hfBase, repo: undefined }, /Repository and file are required/],
  ['blank revision', { ...hfBase, revision: '  ' }, /Revision must be a non-empty string/],
  ['name missing', { ...base, name: undefined }, /name is required/],
  ['name of thousands of characters', { ...base, name: 'a'.repeat(5000) }, /name is too long \(5000 characters\): at most 200/],
  ['modelDirectory of thousands of characters', { ...base, components: [vae], modelDirectory: 'd'.repeat(3000) }, /too long/],
  ['type missing', { ...base, type: undefined }, /type is required/],
  ['unknown type', { ...base, type: 'video' }, /type is required and must be "llm" or "diffusion"/],
  ['unknown field', { ...base, checkSum: 'abc' }, /Unknown download config field: checkSum/],
  ['malformed checksum', { ...base, checksum: 'sha256:xyz' }, /checksum must be a SHA-256/],
  ['file:// URL', { ...base, url: 'file:///etc/passwd' }, /only http and https/],
  ['ftp URL', { ...base, url: 'ftp://127.0.0.1/model.gguf' }, /only http and https/],
  ['URL without a file name', { ...base, url: 'http://127.0.0.1:9/' }, /Cannot derive a file name/],
  ['URL naming a record', { ...base, url: 'http://127.0.0.1:9/other-model.json' }, /model records/],
  ['URL with encoded traversal', { ...base, url: 'http://127.0.0.1:9/..%2F..%2Fescape.gguf' }, /Refusing file name/],
  ['URL with an encoded backslash', { ...base, url: 'http://127.0.0.1:9/a%5C..%5Cb.gguf' }, /Refusing file name/],
  ['URL with NUL', { ...base, url: 'http://127.0.0.1:9/a%00b.gguf' }, /Refusing file name/],
  ['file with ..', { ...hfBase, file: '../../escape.gguf' }, /Invalid file path/],
  ['absolute file', { ...hfBase, file: '/etc/passwd' }, /Invalid file path .* absolute/],
  ['file with a backslash', { ...hfBase, file: 'a\\..\\b.gguf' }, /backslash/],
  ['file with NUL', { ...hfBase, file: 'a\u0000b.gguf' }, /control character/],
  ['bad repo', { ...hfBase, repo: '../org/repo' }, /Invalid Hugging Face repository/],
  ['name without letters or digits', { ...base, name: '../..' }, /no ASCII letter or digit/],
  ['diffusion_model component', { ...base, components: [{ role: 'diffusion_model', source: 'url', url: 'http://127.0.0.1:9/d.gguf' }] }, /"diffusion_model" is not allowed/],
  ['duplicate roles', { ...base, components: [vae, vae] }, /Duplicate component role: vae/],
  ['unknown role', { ...base, components: [{ ...vae, role: 'unet' }] }, /Unknown component role: "unet"/],
  ['component missing url', { ...base, components: [{ role: 'vae', source: 'url' }] }, /URL is required/],
  ['unknown component field', { ...base, components: [{ ...vae, sha: 'x' }] }, /Unknown components\[0\] field: sha/],
  ['modelDirectory with ..', { ...base, components: [vae], modelDirectory: '../outside' }, /modelDirectory must be a plain directory name/],
  ['absolute modelDirectory', { ...base, components: [vae], modelDirectory: '/tmp/x' }, /modelDirectory must be a plain directory name/],
  ['modelDirectory with a backslash', { ...base, components: [vae], modelDirectory: 'a\\b' }, /modelDirectory must be a plain directory name/],
  ['modelDirectory empty after sanitising', { ...base, components: [vae], modelDirectory: '***' }, /no ASCII letter or digit/],
  ['two components, one file name', { ...base, components: [vae, { role: 'clip_l', source: 'url', url: 'http://127.0.0.1:9/other/v.safetensors' }] }, /would both be saved/],
  ['shardFiles with a path', { ...hfBase, shardFiles: ['../x.gguf'] }, /bare file name/],
  ['onProgress not a function', { ...base, onProgress: 5 }, /onProgress must be a function/],
  ['signal not an AbortSignal', { ...base, signal: {} }, /signal must be an AbortSignal/],
  ['negative stall timeout', { ...base, stallTimeoutMs: -5 }, /stallTimeoutMs/],
];

test('bad input: a DownloadError, and nothing written or fetched', async (t) => {
  const { srv, root, hf } = await setup(t);
  for (const [label, config, re] of CASES) {
    const c = { ...config };
    for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
    if (c.source === 'huggingface') Object.assign(c, hf);
    await t.test(label, async () => {
      await rejectsDownload(g.modelManager.downloadModel(c), re);
      assert.deepEqual(tree(root), [], `${label}: nothing written`);
      assert.equal(srv.requests.length, 0, `${label}: nothing fetched`);
    });
  }
  for (const bad of [null, 'config', [base]]) {
    await rejectsDownload(g.modelManager.downloadModel(bad), /must be an object/);
  }
  assert.deepEqual(tree(root), []);
});

test('not enough disk space: InsufficientResourcesError with both figures, before any byte', async (t) => {
  const { srv, root, hf } = await setup(t);
  const f = srv.addFile('org/m', 'big.bin', bytes(1 << 20));
  const config = { source: 'huggingface', repo: 'org/m', file: 'big.bin', name: 'Big', type: 'llm', ...hf };
  let err;
  try {
    await g.modelManager.downloadModel({ ...config, testHooks: { freeDiskBytes: 4096 } });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof g.InsufficientResourcesError, String(err));
  assert.equal(err.code, 'INSUFFICIENT_RESOURCES');
  assert.match(err.message, /Not enough disk space to download Big: it needs 65\.0 MiB \(1\.0 MiB to download plus a 64\.0 MiB safety margin\) but only 4\.0 KiB is free/);
  assert.equal(err.details.available, 4096);
  assert.equal(err.details.required, (1 << 20) + (64 << 20));
  assert.equal(srv.statsFor(f.cdnPath).get, 0);
  assert.deepEqual(tree(path.join(root, 'models')), []);
});

test('the disk check counts only the bytes still missing from a resumable partial', async (t) => {
  const { srv, root, hf } = await setup(t);
  const SIZE = 1 << 20;
  const f = srv.addFile('org/m', 'big.bin', bytes(SIZE, 2));
  const config = { source: 'huggingface', repo: 'org/m', file: 'big.bin', name: 'Big', type: 'llm', ...hf, retryDelayMs: 1 };
  // Room for the rest of the file plus the margin, not for all of it.
  const tight = { testHooks: { freeDiskBytes: SIZE - 600000 + (64 << 20) } };
  await assert.rejects(g.modelManager.downloadModel({ ...config, ...tight }), g.InsufficientResourcesError);
  srv.fault(f.cdnPath, { dropAfter: 600000, times: 1 });
  await rejectsDownload(g.modelManager.downloadModel({ ...config, maxRetries: 0 }), /failed after 1 attempts/);
  const info = await g.modelManager.downloadModel({ ...config, ...tight });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.deepEqual(srv.statsFor(f.cdnPath).ranges, ['bytes=600000-']);
  assert.ok(fs.existsSync(path.join(root, 'models', 'llm', 'big.bin')));
});

test('a server that refuses HEAD: the size comes from a one-byte ranged probe, and is checked', async (t) => {
  const { srv } = await setup(t);
  const raw = srv.addRawFile('/files/big.bin', bytes(1 << 20, 3));
  srv.fault(raw.path, { headFails: true });
  let err;
  try {
    await g.modelManager.downloadModel({ source: 'url', url: raw.url, name: 'Big', type: 'llm', testHooks: { freeDiskBytes: 1 } });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof g.InsufficientResourcesError, String(err));
  assert.equal(err.details.download, 1 << 20);
  const st = srv.statsFor(raw.path);
  assert.deepEqual(st.ranges, ['bytes=0-0']);
  assert.ok(st.bytesSent <= 1);
});
