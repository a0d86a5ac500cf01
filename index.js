'use strict';
/**
 * genai-electron-rs: the public entry. Same API shape as genai-electron's model management,
 * implemented by a Rust native addon. Importing never needs Electron: storage is located on first
 * use (see lib/user-data.js).
 */

const errors = require('./lib/errors.js');
const constants = require('./lib/constants.js');
const { configure, getUserDataPath } = require('./lib/user-data.js');
const { ModelManager } = require('./lib/model-manager.js');
const { StorageManager } = require('./lib/storage-manager.js');
const { SystemInfo } = require('./lib/system-info.js');
const { DiffusionServerManager } = require('./lib/diffusion-server.js');
const binding = require('./binding.js');
const { PATHS, getModelFilePath, getModelDirectory } = require('./lib/paths.js');
const { PRESETS, getPreset } = require('./lib/presets.js');

/** `fetchLocalGGUFMetadata(path)`: the GGUF header of a local file as `GGUFMetadata`. */
function fetchLocalGGUFMetadata(filePath) {
  return errors.native(binding.readLocalGgufMetadata(String(filePath)));
}

module.exports = {
  configure,
  getUserDataPath,
  modelManager: ModelManager.getInstance(),
  ModelManager,
  StorageManager,
  systemInfo: SystemInfo.getInstance(),
  SystemInfo,
  diffusionServer: new DiffusionServerManager(),
  DiffusionServerManager,
  fetchLocalGGUFMetadata,
  PATHS,
  getModelFilePath,
  getModelDirectory,
  DEFAULT_PORTS: constants.DEFAULT_PORTS,
  DIFFUSION_COMPONENT_FLAGS: constants.DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER: constants.DIFFUSION_COMPONENT_ORDER,
  GenaiElectronError: errors.GenaiElectronError,
  ModelNotFoundError: errors.ModelNotFoundError,
  DownloadError: errors.DownloadError,
  InsufficientResourcesError: errors.InsufficientResourcesError,
  ServerError: errors.ServerError,
  PortInUseError: errors.PortInUseError,
  FileSystemError: errors.FileSystemError,
  ChecksumError: errors.ChecksumError,
  BinaryError: errors.BinaryError,
  // Presets: tested model setups (lib/presets.js).
  PRESETS,
  getPreset,
};
