'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('..');

const cases = [
  [() => new g.ModelNotFoundError('m1'), g.ModelNotFoundError, 'MODEL_NOT_FOUND', 'Model not found: m1'],
  [() => new g.DownloadError('boom', { url: 'u' }), g.DownloadError, 'DOWNLOAD_FAILED', 'Download failed: boom'],
  [() => new g.InsufficientResourcesError('too big', { required: '1', available: '0' }), g.InsufficientResourcesError, 'INSUFFICIENT_RESOURCES', 'too big'],
  [() => new g.ServerError('down'), g.ServerError, 'SERVER_ERROR', 'Server error: down'],
  [() => new g.PortInUseError(8081), g.PortInUseError, 'PORT_IN_USE', 'Port 8081 is already in use'],
  [() => new g.FileSystemError('disk'), g.FileSystemError, 'FILE_SYSTEM_ERROR', 'File system error: disk'],
  [() => new g.ChecksumError('bad', { expected: 'a', actual: 'b' }), g.ChecksumError, 'CHECKSUM_ERROR', 'Checksum verification failed: bad'],
  [() => new g.BinaryError('missing'), g.BinaryError, 'BINARY_ERROR', 'Binary error: missing'],
];

for (const [make, Class, code, message] of cases) {
  test(`${Class.name}: instanceof, name, code, message, details`, () => {
    const e = make();
    assert.ok(e instanceof Class);
    assert.ok(e instanceof g.GenaiElectronError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, Class.name);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    assert.ok(typeof e.stack === 'string' && e.stack.includes(Class.name));
    for (const Other of cases.map((c) => c[1]).filter((c) => c !== Class)) assert.ok(!(e instanceof Other));
  });
}

test('details as the contract describes them', () => {
  assert.deepEqual(new g.ModelNotFoundError('x').details.modelId, 'x');
  assert.equal(new g.PortInUseError(9).details.port, 9);
  assert.equal(new g.ChecksumError('c', { expected: 'e', actual: 'a' }).details.expected, 'e');
  assert.ok(new g.ChecksumError('c', { expected: 'e', actual: 'a' }).details.suggestion);
  const base = new g.GenaiElectronError('plain', 'CUSTOM', { a: 1 });
  assert.equal(base.code, 'CUSTOM');
  assert.deepEqual(base.details, { a: 1 });
});

test('errors from the native layer arrive as the contract classes', async () => {
  g.configure({ userDataPath: require('./helpers/storage.js').tempRoot() });
  const e = await g.modelManager.getModelInfo('does-not-exist').catch((err) => err);
  assert.ok(e instanceof g.ModelNotFoundError);
  assert.equal(e.code, 'MODEL_NOT_FOUND');
  assert.equal(e.details.modelId, 'does-not-exist');
  assert.ok(!e.message.includes('__GENAI'), 'no internal marker leaks');
});
