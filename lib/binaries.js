'use strict';
/**
 * Binary provisioning (src/binaries/): installs llama.cpp / stable-diffusion.cpp builds into
 * `<userData>/binaries/<llama|diffusion>/` when nothing usable is there. This adapter reads the
 * environment on the JS thread, asks systemInfo whether CUDA builds may be tried, and turns the
 * native events into 'binary-log' / 'binary-progress' on the server's EventEmitter.
 */

const path = require('node:path');
const binding = require('../binding.js');
const { native } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');
const { DIFFUSION_COMPONENT_FLAGS, DIFFUSION_COMPONENT_ORDER } = require('./constants.js');

/** Environment variables naming a folder that holds the programs (nothing is downloaded then). */
const BINARY_DIR_ENV = Object.freeze({
  diffusion: 'GENAI_ELECTRON_SD_BINARY_DIR',
  llama: 'GENAI_ELECTRON_LLAMA_BINARY_DIR',
});
/** A JSON file replacing the built-in pins table (same shape as BINARY_VERSIONS + `binaries`). */
const MANIFEST_ENV = 'GENAI_ELECTRON_BINARY_MANIFEST';
/** A base URL replacing the scheme and host of every archive URL. */
const MIRROR_ENV = 'GENAI_ELECTRON_BINARY_MIRROR';

function deepFreeze(o) {
  if (o && typeof o === 'object') {
    Object.values(o).forEach(deepFreeze);
    Object.freeze(o);
  }
  return o;
}

/** genai-electron 0.26's pinned releases. */
const BINARY_VERSIONS = deepFreeze(binding.binaryVersions());

function nonEmpty(value) {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

async function cudaAvailable() {
  try {
    const { SystemInfo } = require('./system-info.js');
    const gpu = await SystemInfo.getInstance().getGPUInfo();
    return Boolean(gpu && gpu.available && gpu.cuda === true);
  } catch {
    return false;
  }
}

/**
 * Phase-2 model arguments for a diffusion model id (component flags, else `-m`); `null` when the
 * id names no diffusion model (start() then refuses it before anything is downloaded).
 */
async function diffusionModelArgs(modelId, modelManager) {
  if (typeof modelId !== 'string' || modelId === '') return null;
  const mm = modelManager ?? require('./model-manager.js').ModelManager.getInstance();
  const info = await mm.getModelInfo(modelId);
  if (info.type !== 'diffusion') return null;
  const components = info.components && typeof info.components === 'object' ? info.components : undefined;
  if (components && Object.keys(components).length > 0) {
    const args = [];
    for (const role of DIFFUSION_COMPONENT_ORDER) {
      if (components[role] && components[role].path) args.push(DIFFUSION_COMPONENT_FLAGS[role], components[role].path);
    }
    return args;
  }
  return info.path ? ['-m', info.path] : undefined;
}

/**
 * Makes sure a usable build is installed and resolves with `{ dir, variant, action }`
 * (`action`: 'override' | 'cached' | 'validated' | 'installed'). `binaryPath` (the config field) or
 * the environment variable short-circuits: that folder is used and nothing is downloaded.
 */
async function ensureBinary(type, { emitter, binaryPath, forceValidation, modelArgs } = {}) {
  const overrideDir = nonEmpty(binaryPath) ?? nonEmpty(process.env[BINARY_DIR_ENV[type]]);
  const options = {
    type,
    userData: getUserDataPath(),
    forceValidation: forceValidation === true,
    overrideDir: overrideDir ? path.resolve(overrideDir) : undefined,
    manifestFile: nonEmpty(process.env[MANIFEST_ENV]) ? path.resolve(process.env[MANIFEST_ENV]) : undefined,
    mirror: nonEmpty(process.env[MIRROR_ENV]),
  };
  if (!overrideDir) {
    options.cuda = await cudaAvailable();
    if (Array.isArray(modelArgs) && modelArgs.length > 0) options.modelArgs = modelArgs;
  }
  const onEvent = (ev) => {
    if (!emitter || !ev || typeof ev !== 'object') return;
    const { type: kind, ...payload } = ev;
    try {
      if (kind === 'binary-log') emitter.emit('binary-log', { message: payload.message, level: payload.level });
      else if (kind === 'binary-progress') emitter.emit('binary-progress', payload);
    } catch {
      // A listener's exception is its own; provisioning goes on.
    }
  };
  return native(binding.ensureBinary(options, onEvent));
}

module.exports = {
  BINARY_VERSIONS,
  BINARY_DIR_ENV,
  MANIFEST_ENV,
  MIRROR_ENV,
  ensureBinary,
  diffusionModelArgs,
};
