'use strict';
/**
 * Errors and formatErrorForUI against genai-electron 0.26 itself: the same constructor calls give
 * the same name, code, message and details, and formatErrorForUI the same title, message and
 * remediation, for every error class and for non-contract errors.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('..');
const { reference, normalize } = require('./helpers/reference.js');
const { tempDir } = require('./helpers/system.js');

// [class name, constructor arguments]; each class appears, some with and without details.
const CASES = [
  ['GenaiElectronError', ['base', 'SOME_CODE', { suggestion: 'do this' }]],
  ['GenaiElectronError', ['base without details', 'OTHER']],
  ['ContextConstraintError', ['too small', { reason: 'runtime-below-minimum', stage: 'runtime', minimumContextSize: 8192 }]],
  ['ContextConstraintError', ['with advice', { reason: 'invalid-minimum', stage: 'validation', suggestion: 'Lower the minimum' }]],
  ['ModelNotFoundError', ['m1']],
  ['DownloadError', ['boom', { url: 'http://127.0.0.1/x' }]],
  ['DownloadError', ['no details']],
  ['InsufficientResourcesError', ['too big', { required: '12GB', available: '8GB' }]],
  ['InsufficientResourcesError', ['too big', { required: '12GB', available: '8GB', suggestion: 'Use Q4' }]],
  ['ServerError', ['down', { code: 'SOMETHING' }]],
  ['LlamaCalibrationResourceStabilityError', ['drift', { code: 'CALIBRATION_RESOURCE_DRIFT', suggestion: 'Close apps', partialReport: {} }]],
  ['LlamaCalibrationResourceStabilityError', ['unverified', { code: 'CALIBRATION_RESOURCE_STABILITY_UNVERIFIED', suggestion: 'Retry', partialReport: {} }]],
  ['PortInUseError', [8081]],
  ['FileSystemError', ['disk', { path: '/x' }]],
  ['ChecksumError', ['bad', { expected: 'a', actual: 'b' }]],
  ['BinaryError', ['missing']],
];

function describe(e) {
  return { name: e.name, code: e.code, message: e.message, details: e.details, ownDetails: Object.hasOwn(e, 'details') };
}

test('error classes and formatErrorForUI match genai-electron 0.26 for every class', async () => {
  const theirs = await reference(`
    const cases = ${JSON.stringify(CASES)};
    const out = [];
    for (const [name, args] of cases) {
      const e = new ge[name](...args);
      out.push({ error: { name: e.name, code: e.code, message: e.message, details: e.details, ownDetails: Object.hasOwn(e, 'details') },
                 ui: ge.formatErrorForUI(e), ancestry: Object.keys(ge).filter((k) => typeof ge[k] === 'function' && /Error$/.test(k) && e instanceof ge[k]).sort() });
    }
    const others = [new Error('plain'), new TypeError(''), 'a string', 42, null, undefined, { message: 'object' }];
    return { out, others: others.map((x) => ge.formatErrorForUI(x)) };
  `);
  const errorNames = Object.keys(g).filter((k) => typeof g[k] === 'function' && /Error$/.test(k));
  assert.deepEqual(
    new Set(CASES.map(([name]) => name)),
    new Set(errorNames),
    'every exported error class is covered',
  );
  CASES.forEach(([name, args], i) => {
    const e = new g[name](...args);
    const ours = {
      error: describe(e),
      ui: g.formatErrorForUI(e),
      ancestry: errorNames.filter((k) => e instanceof g[k]).sort(),
    };
    assert.deepEqual(normalize(ours), theirs.out[i], `${name} ${JSON.stringify(args)}`);
    assert.ok(e instanceof Error && typeof e.stack === 'string');
  });
  const others = [new Error('plain'), new TypeError(''), 'a string', 42, null, undefined, { message: 'object' }];
  assert.deepEqual(normalize(others.map((x) => g.formatErrorForUI(x))), theirs.others);
});

test('an error thrown by the native layer formats like one built in JS', async () => {
  g.configure({ userDataPath: tempDir('genai-rs-errors-') });
  await assert.rejects(g.modelManager.getModelInfo('no-such-model-anywhere'), (e) => {
    assert.ok(e instanceof g.ModelNotFoundError);
    const ui = g.formatErrorForUI(e);
    assert.equal(ui.title, 'Model Not Found');
    assert.equal(ui.remediation, 'Use modelManager.listModels() to see available models');
    return true;
  });
});
