'use strict';
/**
 * GGUF header readers of the package root. `fetchGGUFMetadata(url)` and
 * `fetchLocalGGUFMetadata(path)` return genai-electron 0.26's raw shape: `{ metadata, tensorInfos }`
 * with every key as written and 64-bit integers as BigInt. `fetchLocalGGUFModelMetadata(path)`
 * returns the processed `GGUFMetadata` that model records carry. The parsing is native.
 */

const binding = require('../binding.js');
const { native } = require('./errors.js');

/** Turns the native form (see src/gguf/raw.rs) into genai-electron's: tagged 64-bit values become BigInt. */
function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value !== null && typeof value === 'object') {
    if (typeof value.$bigint === 'string') return BigInt(value.$bigint);
    if (typeof value.$float === 'string') return Number(value.$float);
  }
  return value;
}

function rawShape(native) {
  const metadata = {};
  for (const [key, value] of native.metadata) metadata[key] = revive(value);
  const tensorInfos = native.tensorInfos.map((t) => ({
    name: t.name,
    n_dims: t.n_dims,
    shape: t.shape.map(revive),
    dtype: t.dtype,
    offset: revive(t.offset),
  }));
  return { metadata, tensorInfos };
}

function stringArg(name, value) {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

/** The raw header of a remote GGUF file, read with HTTP Range requests (HF_TOKEN only to Hugging Face). */
async function fetchGGUFMetadata(url) {
  return rawShape(await native(binding.fetchRemoteGgufRaw(stringArg('url', url))));
}

/** The raw header of a local GGUF file. */
async function fetchLocalGGUFMetadata(filePath) {
  return rawShape(await native(binding.readLocalGgufRaw(stringArg('filePath', filePath))));
}

/** The processed `GGUFMetadata` (named fields + `raw`) of a local GGUF file, as model records hold it. */
async function fetchLocalGGUFModelMetadata(filePath) {
  return native(binding.readLocalGgufMetadata(stringArg('filePath', filePath)));
}

/** `metadata['<general.architecture>.<fieldPath>']`, or undefined without an architecture. */
function getArchField(metadata, fieldPath) {
  const arch = metadata['general.architecture'];
  return arch && typeof arch === 'string' ? metadata[`${arch}.${fieldPath}`] : undefined;
}

module.exports = { fetchGGUFMetadata, fetchLocalGGUFMetadata, fetchLocalGGUFModelMetadata, getArchField };
