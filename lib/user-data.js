'use strict';
/**
 * Where storage lives. Resolved lazily on first use, so importing the package never needs
 * Electron: explicit configure() > GENAI_ELECTRON_USER_DATA > Electron's userData (main process)
 * > a per-user default directory.
 */

const path = require('node:path');
const binding = require('../binding.js');

let configured;
let resolved;

function fromElectron() {
  // Only an Electron main process has app.getPath; renderers and plain Node skip this.
  if (!process.versions || !process.versions.electron || process.type === 'renderer') return undefined;
  try {
    // eslint-disable-next-line global-require
    const electron = require('electron');
    if (electron && electron.app && typeof electron.app.getPath === 'function') {
      return electron.app.getPath('userData');
    }
  } catch {
    // Not available: fall through to the default.
  }
  return undefined;
}

/** Resolves (once) and returns the userData root. */
function getUserDataPath() {
  if (resolved) return resolved;
  const candidates = [
    ['configure()', configured],
    ['GENAI_ELECTRON_USER_DATA', process.env.GENAI_ELECTRON_USER_DATA],
  ];
  for (const [, value] of candidates) {
    if (typeof value === 'string' && value.trim() !== '') {
      resolved = path.resolve(value);
      return resolved;
    }
  }
  resolved = path.resolve(fromElectron() || binding.defaultUserDataPath());
  return resolved;
}

/**
 * Sets the userData root explicitly. Takes effect for every later call; call it before the first
 * download or server start.
 */
function configure(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('configure() expects an options object');
  }
  if (options.userDataPath !== undefined) {
    if (typeof options.userDataPath !== 'string' || options.userDataPath.trim() === '') {
      throw new TypeError('userDataPath must be a non-empty string');
    }
    configured = options.userDataPath;
    resolved = undefined;
  }
  return { userDataPath: getUserDataPath() };
}

module.exports = { getUserDataPath, configure };
