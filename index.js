'use strict';
/**
 * genai-electron-rs: the public entry. Same API shape as genai-electron 0.26, implemented by a
 * Rust native addon. Importing never needs Electron: storage is located on first use (see
 * lib/user-data.js).
 *
 * `module.exports` below lists plain identifiers only: that is what lets Node's ESM loader see
 * every export by name (`import { diffusionServer } from 'genai-electron-rs'`).
 * __test__/esm-exports.test.mjs checks that ESM and CommonJS see the same names.
 */

const {
  GenaiElectronError,
  ContextConstraintError,
  ModelNotFoundError,
  DownloadError,
  InsufficientResourcesError,
  ServerError,
  LlamaCalibrationResourceStabilityError,
  PortInUseError,
  FileSystemError,
  ChecksumError,
  BinaryError,
} = require('./lib/errors.js');
const {
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  DIFFUSION_VRAM_THRESHOLDS,
  DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER,
  DIFFUSION_CALIBRATION_DEFAULTS,
  DIFFUSION_BACKEND_DEFAULTS,
  KV_CACHE_BYTES_PER_ELEMENT,
  CONTEXT_GRANULARITY_LADDER,
  REASONING_MODEL_PATTERNS,
} = require('./lib/constants.js');
const { configure, getUserDataPath } = require('./lib/user-data.js');
const { ModelManager } = require('./lib/model-manager.js');
const { StorageManager } = require('./lib/storage-manager.js');
const { SystemInfo } = require('./lib/system-info.js');
const { DiffusionServerManager } = require('./lib/diffusion-server.js');
const { PATHS, getBinaryPath, getModelFilePath, getModelDirectory } = require('./lib/paths.js');
const { checkHealth, waitForHealthy, isServerResponding, normalizeHealthHost, findFreePort, isPortBindable } = require('./lib/net.js');
const {
  getCPUInfo,
  getRecommendedThreads,
  getMemoryInfo,
  detectGPU,
  estimateVRAM,
  estimateKVBytesPerToken,
} = require('./lib/system-helpers.js');
const { getHuggingFaceURL, parseHuggingFaceURL, generateId, detectReasoningSupport, floorContextToGranularity } = require('./lib/helpers.js');
const { fetchGGUFMetadata, fetchLocalGGUFMetadata, fetchLocalGGUFModelMetadata, getArchField } = require('./lib/gguf.js');
const { getPlatform, getArchitecture, getPlatformKey, isMac, isWindows, isLinux, isAppleSilicon } = require('./lib/platform.js');
const {
  ensureDirectory,
  fileExists,
  getFileSize,
  deleteFile,
  moveFile,
  calculateChecksum,
  calculateSHA256,
  verifyChecksum,
  formatBytes,
  sanitizeFilename,
} = require('./lib/files.js');
const { attachAppLifecycle } = require('./lib/lifecycle.js');
const { formatErrorForUI } = require('./lib/format-error.js');

const systemInfo = SystemInfo.getInstance();
const modelManager = ModelManager.getInstance();
const diffusionServer = new DiffusionServerManager();

module.exports = {
  // Singletons and managers
  systemInfo,
  modelManager,
  diffusionServer,
  SystemInfo,
  ModelManager,
  DiffusionServerManager,
  StorageManager,
  // Server plumbing
  checkHealth,
  waitForHealthy,
  isServerResponding,
  normalizeHealthHost,
  findFreePort,
  isPortBindable,
  // System helpers
  estimateKVBytesPerToken,
  floorContextToGranularity,
  KV_CACHE_BYTES_PER_ELEMENT,
  CONTEXT_GRANULARITY_LADDER,
  getCPUInfo,
  getRecommendedThreads,
  getMemoryInfo,
  estimateVRAM,
  detectGPU,
  // Download and model helpers
  getHuggingFaceURL,
  parseHuggingFaceURL,
  calculateSHA256,
  verifyChecksum,
  generateId,
  fetchGGUFMetadata,
  fetchLocalGGUFMetadata,
  fetchLocalGGUFModelMetadata,
  getArchField,
  detectReasoningSupport,
  REASONING_MODEL_PATTERNS,
  // Platform and file utilities
  getPlatform,
  getArchitecture,
  getPlatformKey,
  isMac,
  isWindows,
  isLinux,
  isAppleSilicon,
  ensureDirectory,
  fileExists,
  getFileSize,
  deleteFile,
  moveFile,
  calculateChecksum,
  formatBytes,
  sanitizeFilename,
  // App integration
  attachAppLifecycle,
  formatErrorForUI,
  // Paths and storage location
  configure,
  getUserDataPath,
  PATHS,
  getBinaryPath,
  getModelFilePath,
  getModelDirectory,
  // Constants
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  DIFFUSION_VRAM_THRESHOLDS,
  DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER,
  DIFFUSION_CALIBRATION_DEFAULTS,
  DIFFUSION_BACKEND_DEFAULTS,
  // Errors
  GenaiElectronError,
  ContextConstraintError,
  ModelNotFoundError,
  DownloadError,
  InsufficientResourcesError,
  ServerError,
  LlamaCalibrationResourceStabilityError,
  PortInUseError,
  FileSystemError,
  ChecksumError,
  BinaryError,
};
