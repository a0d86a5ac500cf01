'use strict';
const { test, describe, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const g = require('..');
const { tempRoot, sha256, writeFile, writeRecord, readRecord, fluxRecord } = require('./helpers/storage.js');

let root;
beforeEach(() => {
  root = tempRoot();
  g.configure({ userDataPath: root });
});

function singleRecord(overrides = {}) {
  const content = Buffer.from('single-file-model-bytes');
  const p = writeFile(path.join(root, 'models', 'llm', 'tiny.gguf'), content);
  // Shape written by genai-electron 0.5 (no revision, no provenance).
  const rec = {
    id: 'tiny-llama',
    name: 'Tiny Llama',
    type: 'llm',
    size: content.length,
    path: p,
    downloadedAt: '2026-02-20T08:00:00.000Z',
    source: { type: 'url', url: 'https://example.com/tiny.gguf' },
    checksum: `sha256:${sha256(content)}`,
    supportsReasoning: false,
    ...overrides,
  };
  writeRecord(root, rec);
  return rec;
}

function shardedRecord() {
  const dir = path.join(root, 'models', 'llm', 'big-model');
  const shards = [1, 2, 3].map((i) => {
    const content = Buffer.from(`shard-${i}`);
    const p = writeFile(path.join(dir, `big-0000${i}-of-00003.gguf`), content);
    return { path: p, size: content.length, ...(i === 1 ? { checksum: `sha256:${sha256(content)}` } : {}) };
  });
  const rec = {
    id: 'big-model',
    name: 'Big Model',
    type: 'llm',
    size: shards.reduce((a, s) => a + s.size, 0),
    path: shards[0].path,
    downloadedAt: '2026-08-01T00:00:00.000Z',
    source: { type: 'huggingface', url: 'https://huggingface.co/o/r/resolve/main/big-00001-of-00003.gguf', repo: 'o/r', file: 'big-00001-of-00003.gguf', revision: 'main' },
    checksum: shards[0].checksum,
    shards,
  };
  writeRecord(root, rec);
  return rec;
}

describe('listing and getting', () => {
  test('initialize creates the layout', async () => {
    await g.modelManager.initialize();
    for (const d of ['models/llm', 'models/diffusion', 'binaries/llama', 'binaries/diffusion', 'logs', 'config', 'temp', 'loras']) {
      assert.ok(fs.statSync(path.join(root, d)).isDirectory(), d);
    }
  });

  test('empty storage lists nothing', async () => {
    assert.deepEqual(await g.modelManager.listModels(), []);
  });

  test('single-file, multi-component and sharded records are listed and returned intact', async () => {
    const single = singleRecord();
    const flux = fluxRecord(root);
    const sharded = shardedRecord();
    const all = await g.modelManager.listModels();
    assert.deepEqual(all.map((m) => m.id).sort(), ['big-model', 'flux-2-klein-q80', 'tiny-llama']);
    // llm before diffusion
    assert.equal(all[all.length - 1].id, 'flux-2-klein-q80');
    assert.deepEqual((await g.modelManager.listModels('diffusion')).map((m) => m.id), ['flux-2-klein-q80']);
    // As written, plus the computed sharedSize (no other record uses their files).
    assert.deepEqual(await g.modelManager.getModelInfo('tiny-llama'), { ...single, sharedSize: 0 });
    assert.deepEqual(await g.modelManager.getModelInfo('flux-2-klein-q80'), { ...flux, sharedSize: 0 });
    assert.deepEqual(await g.modelManager.getModelInfo('big-model'), { ...sharded, sharedSize: 0 });
    const got = await g.modelManager.getModelInfo('flux-2-klein-q80');
    assert.deepEqual(Object.keys(got.components), ['diffusion_model', 'llm', 'vae']);
    assert.equal(typeof got.size, 'number');
  });

  test('a corrupt or half-written record beside good ones is skipped', async () => {
    singleRecord();
    writeFile(path.join(root, 'models', 'llm', 'broken.json'), '{"id": "broken", "type": "llm", "pa');
    writeFile(path.join(root, 'models', 'llm', 'notjson.json'), 'garbage \u0000 bytes');
    writeFile(path.join(root, 'models', 'diffusion', 'wrongshape.json'), '[1,2,3]');
    const all = await g.modelManager.listModels();
    assert.deepEqual(all.map((m) => m.id), ['tiny-llama']);
    await assert.rejects(g.modelManager.getModelInfo('broken'), g.ModelNotFoundError);
  });

  test('unknown model id and invalid type', async () => {
    await assert.rejects(g.modelManager.getModelInfo('nope'), (e) => e instanceof g.ModelNotFoundError && e.message === 'Model not found: nope');
    await assert.rejects(g.modelManager.getModelInfo('../../etc/passwd'), g.ModelNotFoundError);
    await assert.rejects(g.modelManager.listModels('image'), TypeError);
  });
});

describe('rewrites keep unknown fields', () => {
  test('StorageManager round trip keeps fields this version does not know', async () => {
    const rec = singleRecord({
      futureTopLevel: { nested: [1, 'two', null] },
      provenance: { license: 'apache-2.0', extraNote: 'x' },
      source: { type: 'url', url: 'https://example.com/tiny.gguf', mirror: 'eu-1' },
    });
    const sm = g.StorageManager.getInstance();
    const loaded = await sm.loadModelMetadata('llm', rec.id);
    loaded.name = 'Renamed';
    await sm.saveModelMetadata(loaded);
    const back = readRecord(root, 'llm', rec.id);
    assert.equal(back.name, 'Renamed');
    assert.deepEqual(back.futureTopLevel, rec.futureTopLevel);
    assert.equal(back.source.mirror, 'eu-1');
    assert.equal(back.provenance.extraNote, 'x');
    // Written atomically: no temporary files left behind.
    assert.deepEqual(fs.readdirSync(path.join(root, 'models', 'llm')).filter((f) => f.includes('.tmp')), []);
  });

  test('loadModelMetadata of a missing record is a FileSystemError', async () => {
    await assert.rejects(g.StorageManager.getInstance().loadModelMetadata('llm', 'missing'), (e) => e instanceof g.FileSystemError && /Model metadata not found: missing/.test(e.message));
  });

  test('storage used counts shared files once', async () => {
    const a = fluxRecord(root, { id: 'klein-a', dit: 'a.gguf' });
    const b = fluxRecord(root, { id: 'klein-b', dit: 'b-longer.gguf' });
    const shared = a.components.llm.size + a.components.vae.size;
    assert.equal(await g.StorageManager.getInstance().getStorageUsed('diffusion'), a.size + b.size - shared);
    // Each model reports the bytes it shares: deleting it frees size - sharedSize.
    const listed = await g.modelManager.listModels('diffusion');
    assert.deepEqual(listed.map((m) => [m.id, m.sharedSize]), [['klein-a', shared], ['klein-b', shared]]);
    assert.equal((await g.modelManager.getModelInfo('klein-a')).sharedSize, shared);
    // A listed value saved back does not store the computed field.
    await g.StorageManager.getInstance().saveModelMetadata(listed[0]);
    assert.equal('sharedSize' in readRecord(root, 'diffusion', 'klein-a'), false);
    assert.equal('sharedSize' in await g.StorageManager.getInstance().loadModelMetadata('diffusion', 'klein-a'), false);
  });

  test('checkDiskSpace is the space available to this user on the models volume', async () => {
    const got = await g.StorageManager.getInstance().checkDiskSpace();
    const st = fs.statfsSync(root);
    const expected = st.bavail * st.bsize;
    // Other processes write meanwhile: allow 1 % (or 256 MiB) of drift, nothing more.
    assert.ok(Math.abs(got - expected) <= Math.max(expected / 100, 256 * 2 ** 20), `${got} vs statfs ${expected}`);
  });
});

describe('deleteModel', () => {
  test('single-file model: file and record removed', async () => {
    const rec = singleRecord();
    await g.modelManager.deleteModel(rec.id);
    assert.equal(fs.existsSync(rec.path), false);
    assert.equal(fs.existsSync(path.join(root, 'models', 'llm', 'tiny-llama.json')), false);
    await assert.rejects(g.modelManager.getModelInfo(rec.id), g.ModelNotFoundError);
  });

  test('shared variants: files used by another variant are kept, the directory goes with the last one', async () => {
    const a = fluxRecord(root, { id: 'klein-a', name: 'Klein A', dit: 'klein-a.gguf' });
    const b = fluxRecord(root, { id: 'klein-b', name: 'Klein B', dit: 'klein-b.gguf' });
    assert.equal(a.components.vae.path, b.components.vae.path);
    await g.modelManager.deleteModel('klein-a');
    assert.equal(fs.existsSync(a.components.diffusion_model.path), false);
    assert.equal(fs.existsSync(a.components.vae.path), true);
    assert.equal(fs.existsSync(a.components.llm.path), true);
    assert.equal(fs.existsSync(b.components.diffusion_model.path), true);
    await g.modelManager.deleteModel('klein-b');
    assert.equal(fs.existsSync(path.dirname(b.path)), false);
    assert.equal(fs.existsSync(path.join(root, 'models', 'diffusion')), true);
  });

  test('a file also used by a single-file record is kept', async () => {
    const flux = fluxRecord(root);
    writeRecord(root, { id: 'vae-only', name: 'VAE', type: 'diffusion', size: 1, path: flux.components.vae.path, downloadedAt: '', source: { type: 'url', url: 'http://x/v' } });
    await g.modelManager.deleteModel(flux.id);
    assert.equal(fs.existsSync(flux.components.vae.path), true);
  });

  test('sharded model: every shard and the shard directory removed', async () => {
    const rec = shardedRecord();
    await g.modelManager.deleteModel(rec.id);
    for (const s of rec.shards) assert.equal(fs.existsSync(s.path), false);
    assert.equal(fs.existsSync(path.dirname(rec.path)), false);
  });

  test('refuses records whose paths resolve outside the models directory, deleting nothing', async () => {
    const victim = writeFile(path.join(root, 'somewhere', 'precious.txt'), 'keep me');
    const flux = fluxRecord(root);
    const edited = JSON.parse(JSON.stringify(flux));
    edited.components.vae.path = path.join(root, 'models', 'diffusion', '..', '..', 'somewhere', 'precious.txt');
    writeRecord(root, edited);
    await assert.rejects(g.modelManager.deleteModel(flux.id), (e) => e instanceof g.FileSystemError && /outside the models directory/.test(e.message));
    assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me');
    assert.equal(fs.existsSync(flux.components.diffusion_model.path), true);
    assert.ok(await g.modelManager.getModelInfo(flux.id));

    const single = singleRecord({ path: path.join(root, 'models', 'llm', '../../somewhere/precious.txt') });
    await assert.rejects(g.modelManager.deleteModel(single.id), g.FileSystemError);
    assert.equal(fs.existsSync(victim), true);

    const relative = singleRecord({ id: 'rel', path: '../../somewhere/precious.txt' });
    await assert.rejects(g.modelManager.deleteModel(relative.id), g.FileSystemError);
    assert.equal(fs.existsSync(victim), true);
  });

  test('refuses a path that escapes through a symlinked directory', { skip: process.platform === 'win32' }, async () => {
    const outside = tempRoot('genai-rs-outside-');
    const victim = writeFile(path.join(outside, 'victim.bin'), 'data');
    fs.mkdirSync(path.join(root, 'models', 'llm'), { recursive: true });
    fs.symlinkSync(outside, path.join(root, 'models', 'llm', 'linked'));
    singleRecord({ id: 'sym', path: path.join(root, 'models', 'llm', 'linked', 'victim.bin') });
    await assert.rejects(g.modelManager.deleteModel('sym'), g.FileSystemError);
    assert.equal(fs.existsSync(victim), true);
  });

  test('unknown id', async () => {
    await assert.rejects(g.modelManager.deleteModel('ghost'), g.ModelNotFoundError);
  });
});

describe('verifyModel', () => {
  test('single-file with checksum: true; without: false', async () => {
    singleRecord();
    assert.equal(await g.modelManager.verifyModel('tiny-llama'), true);
    singleRecord({ id: 'no-sum', checksum: undefined });
    assert.equal(await g.modelManager.verifyModel('no-sum'), false);
  });

  test('single-file mismatch is a ChecksumError with expected and actual', async () => {
    const rec = singleRecord();
    fs.writeFileSync(rec.path, 'tampered');
    await assert.rejects(g.modelManager.verifyModel(rec.id), (e) => {
      assert.ok(e instanceof g.ChecksumError);
      assert.equal(e.code, 'CHECKSUM_ERROR');
      assert.equal(e.message, 'Checksum verification failed: SHA256 checksum mismatch');
      assert.equal(e.details.expected, rec.checksum);
      assert.equal(e.details.actual, `sha256:${sha256(Buffer.from('tampered'))}`);
      return true;
    });
  });

  test('single-file missing file is a FileSystemError even without checksum', async () => {
    const rec = singleRecord({ checksum: undefined });
    fs.rmSync(rec.path);
    await assert.rejects(g.modelManager.verifyModel(rec.id), g.FileSystemError);
  });

  test('multi-component: all verified, mismatch and missing name the component', async () => {
    const flux = fluxRecord(root);
    assert.equal(await g.modelManager.verifyModel(flux.id), true);
    fs.appendFileSync(flux.components.vae.path, 'x');
    await assert.rejects(g.modelManager.verifyModel(flux.id), (e) => e instanceof g.ChecksumError && e.message === 'Checksum verification failed: SHA256 checksum mismatch for component: vae' && e.details.component === 'vae');
    fs.rmSync(flux.components.llm.path);
    await assert.rejects(g.modelManager.verifyModel(flux.id), (e) => e instanceof g.FileSystemError && e.message.includes('Component file not found (llm)') && e.details.component === 'llm');
  });

  test('multi-component without checksums returns false', async () => {
    const flux = fluxRecord(root, { withChecksums: false });
    assert.equal(await g.modelManager.verifyModel(flux.id), false);
  });

  test('sharded: verified; missing shard named', async () => {
    const rec = shardedRecord();
    assert.equal(await g.modelManager.verifyModel(rec.id), true);
    fs.rmSync(rec.shards[2].path);
    await assert.rejects(g.modelManager.verifyModel(rec.id), (e) => e instanceof g.FileSystemError && /Shard file not found \(3\)/.test(e.message));
  });

  test('large file hashes correctly off the JS thread', async () => {
    const big = Buffer.alloc(24 * 1024 * 1024, 7);
    singleRecord({ id: 'big', path: writeFile(path.join(root, 'models', 'llm', 'big.bin'), big), checksum: sha256(big) });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    assert.equal(await g.modelManager.verifyModel('big'), true);
    clearInterval(timer);
    assert.ok(ticks > 0, 'the event loop kept running while hashing');
  });
});

describe('path helpers', () => {
  test('PATHS, getModelFilePath and getModelDirectory follow the configured root', () => {
    assert.equal(g.PATHS.models.diffusion, path.join(root, 'models', 'diffusion'));
    assert.equal(g.PATHS.temp, path.join(root, 'temp'));
    assert.equal(g.getModelFilePath('llm', 'a.gguf'), path.join(root, 'models', 'llm', 'a.gguf'));
    assert.equal(g.getModelDirectory('diffusion', 'flux'), path.join(root, 'models', 'diffusion', 'flux'));
    assert.throws(() => g.getModelDirectory('video', 'x'), TypeError);
    const other = tempRoot();
    g.configure({ userDataPath: other });
    assert.equal(g.PATHS.logs, path.join(other, 'logs'));
  });
});

describe('odd record names', () => {
  test('a record with an empty id (".json", as genai-electron writes for such names) is listed and found', async () => {
    const content = Buffer.from('x');
    const p = writeFile(path.join(root, 'models', 'diffusion', 'x.bin'), content);
    writeRecord(root, { id: '', name: '***', type: 'diffusion', size: 1, path: p, downloadedAt: '', source: { type: 'url', url: 'http://x/x.bin' } });
    writeFile(path.join(root, 'models', 'diffusion', '._x.json'), Buffer.from([0, 5, 22, 7, 0, 2]));
    assert.deepEqual((await g.modelManager.listModels('diffusion')).map((m) => m.name), ['***']);
    assert.equal((await g.modelManager.getModelInfo('')).name, '***');
  });
});
