'use strict';
/**
 * Type conformance with genai-electron 0.26 (see conformance/check.js): every export of its
 * index.d.ts either conforms here or is in conformance/exceptions.js, that list holds nothing
 * stale, and docs/migration.md describes every entry.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { runConformance } = require('./conformance/check.js');
const EXCEPTIONS = require('./conformance/exceptions.js');

test('ours stands where genai-electron 0.26 is used, except the documented list', () => {
  const excepted = new Map();
  const omitted = new Map();
  for (const entry of EXCEPTIONS) {
    assert.ok(entry.reason && entry.doc && ['difference', 'not-provided', 'pending'].includes(entry.kind), JSON.stringify(entry));
    for (const name of entry.names) {
      assert.ok(!excepted.has(name), `${name} is listed twice`);
      excepted.set(name, entry);
      if (entry.members) omitted.set(name, entry.members);
    }
  }
  const r = runConformance(omitted);
  assert.deepEqual(r.unowned, [], 'diagnostics outside the generated checks');
  assert.ok(r.theirs.length > 200, `0.26 exports found: ${r.theirs.length}`);
  const problems = [];
  let conform = 0;
  for (const name of r.theirs) {
    const entry = excepted.get(name);
    const missing = r.missing.includes(name);
    const failed = r.failed.get(name);
    if (!entry) {
      if (missing) problems.push(`${name}: not exported`);
      else if (failed) problems.push(`${name}:\n    ${failed.join('\n    ')}`);
      else conform += 1;
      continue;
    }
    if (entry.members) {
      if (missing) problems.push(`${name}: not exported, but its exception lists members only`);
      else if (failed) problems.push(`${name} (without ${entry.members.join(', ')}):\n    ${failed.join('\n    ')}`);
      else if (!r.failed.has(`${name}#full`)) problems.push(`${name}: conforms in full now; remove its exception`);
      continue;
    }
    if (!missing && !failed) problems.push(`${name}: conforms now; remove it from conformance/exceptions.js`);
    if (entry.kind === 'difference' && missing) problems.push(`${name}: listed as a difference but not exported`);
  }
  for (const name of excepted.keys()) {
    if (!r.theirs.includes(name)) problems.push(`${name}: listed in exceptions but not exported by genai-electron 0.26`);
  }
  const counts = { difference: 0, 'not-provided': 0, pending: 0 };
  for (const name of r.theirs) if (excepted.has(name)) counts[excepted.get(name).kind] += 1;
  console.log(
    `conformance with genai-electron 0.26: ${conform} of ${r.theirs.length} exports conform; ` +
      `${counts.difference} documented differences, ${counts['not-provided']} not provided yet, ${counts.pending} pending`,
  );
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('docs/migration.md describes every exception', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'migration.md'), 'utf8');
  for (const entry of EXCEPTIONS) assert.ok(doc.includes(entry.doc), `docs/migration.md lacks ${entry.doc}`);
});
