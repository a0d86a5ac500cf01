'use strict';
/** genai-electron's platform helpers. */

const SUPPORTED_PLATFORM_KEYS = ['darwin-arm64', 'darwin-x64', 'win32-x64', 'linux-x64'];

const getPlatform = () => process.platform;
const getArchitecture = () => process.arch;
const isMac = () => process.platform === 'darwin';
const isWindows = () => process.platform === 'win32';
const isLinux = () => process.platform === 'linux';
const isAppleSilicon = () => isMac() && process.arch === 'arm64';

/** `<platform>-<arch>` of a platform genai-electron ships binaries for; throws otherwise. */
function getPlatformKey() {
  const key = `${process.platform}-${process.arch}`;
  if (!SUPPORTED_PLATFORM_KEYS.includes(key)) {
    throw new Error(`Unsupported platform: ${key}. Supported platforms: ${SUPPORTED_PLATFORM_KEYS.join(', ')}`);
  }
  return key;
}

module.exports = { getPlatform, getArchitecture, getPlatformKey, isMac, isWindows, isLinux, isAppleSilicon };
