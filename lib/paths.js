'use strict';
/**
 * genai-electron's path helpers. Its `PATHS` is computed at import from Electron; here every
 * property is a getter over the lazily resolved userData root, so importing stays Electron-free.
 */

const path = require('node:path');
const { getUserDataPath } = require('./user-data.js');

function assertType(type) {
  if (type !== 'llm' && type !== 'diffusion') {
    throw new TypeError(`Invalid model type: ${JSON.stringify(type)} (expected "llm" or "diffusion")`);
  }
}

const PATHS = Object.freeze({
  get userData() {
    return getUserDataPath();
  },
  get models() {
    const root = path.join(getUserDataPath(), 'models');
    return { llm: path.join(root, 'llm'), diffusion: path.join(root, 'diffusion') };
  },
  get binaries() {
    const root = path.join(getUserDataPath(), 'binaries');
    return { llama: path.join(root, 'llama'), diffusion: path.join(root, 'diffusion') };
  },
  get logs() {
    return path.join(getUserDataPath(), 'logs');
  },
  get config() {
    return path.join(getUserDataPath(), 'config');
  },
  get temp() {
    return path.join(getUserDataPath(), 'temp');
  },
  get loras() {
    return path.join(getUserDataPath(), 'loras');
  },
});

/** `<userData>/models/<type>/<filename>` (single-file models). */
function getModelFilePath(type, filename) {
  assertType(type);
  return path.join(PATHS.models[type], filename);
}

/** `<userData>/models/<type>/<modelId>/` (multi-component and sharded models). */
function getModelDirectory(type, modelId) {
  assertType(type);
  return path.join(PATHS.models[type], modelId);
}

/** `<userData>/binaries/<type>/<binaryName>` (`.exe` appended on Windows). */
function getBinaryPath(type, binaryName) {
  if (type !== 'llama' && type !== 'diffusion') {
    throw new TypeError(`Invalid binary type: ${JSON.stringify(type)} (expected "llama" or "diffusion")`);
  }
  return path.join(PATHS.binaries[type], process.platform === 'win32' ? `${binaryName}.exe` : binaryName);
}

module.exports = { PATHS, getModelFilePath, getModelDirectory, getBinaryPath };
