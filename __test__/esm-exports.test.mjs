// Every export, imported by name through the package's own name: a name missing from what Node's
// ESM loader sees fails this file at link time, before any test runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  systemInfo,
  modelManager,
  diffusionServer,
  SystemInfo,
  ModelManager,
  DiffusionServerManager,
  StorageManager,
  checkHealth,
  waitForHealthy,
  isServerResponding,
  normalizeHealthHost,
  findFreePort,
  isPortBindable,
  estimateKVBytesPerToken,
  floorContextToGranularity,
  KV_CACHE_BYTES_PER_ELEMENT,
  CONTEXT_GRANULARITY_LADDER,
  getCPUInfo,
  getRecommendedThreads,
  getMemoryInfo,
  estimateVRAM,
  detectGPU,
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
  attachAppLifecycle,
  formatErrorForUI,
  configure,
  getUserDataPath,
  PATHS,
  getBinaryPath,
  getModelFilePath,
  getModelDirectory,
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  DIFFUSION_VRAM_THRESHOLDS,
  DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER,
  DIFFUSION_CALIBRATION_DEFAULTS,
  DIFFUSION_BACKEND_DEFAULTS,
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
} from 'genai-electron-rs';
import * as esm from 'genai-electron-rs';

const require = createRequire(import.meta.url);

/** The names of this file's static import list above. */
function importedNames() {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const list = /^import \{([^}]*)\} from 'genai-electron-rs';$/m.exec(source);
  return list[1].split(',').map((s) => s.trim()).filter(Boolean);
}

test('ESM and CommonJS see the same exports, and this file imports all of them', () => {
  const cjs = require('genai-electron-rs');
  const esmNames = Object.keys(esm).filter((k) => k !== 'default' && k !== 'module.exports').sort();
  assert.deepEqual(esmNames, Object.keys(cjs).sort());
  const imported = importedNames();
  assert.deepEqual([...imported].sort(), esmNames);
  for (const name of imported) assert.ok(cjs[name] !== undefined, name);
  assert.equal(formatErrorForUI, cjs.formatErrorForUI);
  assert.equal(diffusionServer, cjs.diffusionServer);
});

test('the default export is the CommonJS module object', () => {
  assert.equal(esm.default, require('genai-electron-rs'));
});
