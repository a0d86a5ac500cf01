'use strict';
/**
 * genai-electron's file and checksum helpers. The I/O and the hashing run in the native addon,
 * off the JS thread (hashing streams the file); failures are `FileSystemError`s with
 * genai-electron's messages.
 */

const binding = require('../binding.js');
const { native } = require('./errors.js');

function pathArg(name, value) {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

const ensureDirectory = async (dirPath) => native(binding.fileEnsureDirectory(pathArg('dirPath', dirPath)));
const fileExists = async (filePath) => native(binding.fileExists(pathArg('filePath', filePath)));
const getFileSize = async (filePath) => native(binding.fileSize(pathArg('filePath', filePath)));
const deleteFile = async (filePath) => native(binding.fileDelete(pathArg('filePath', filePath)));
const moveFile = async (fromPath, toPath) => native(binding.fileMove(pathArg('fromPath', fromPath), pathArg('toPath', toPath)));

/** Lower-case hex SHA-256 of a file. */
const calculateChecksum = async (filePath) => native(binding.fileSha256(pathArg('filePath', filePath)));
const calculateSHA256 = calculateChecksum;

/** Whether the file's SHA-256 is `expectedChecksum` (hex, optionally `sha256:`-prefixed). */
async function verifyChecksum(filePath, expectedChecksum) {
  if (typeof expectedChecksum !== 'string') throw new TypeError('expectedChecksum must be a string');
  const actual = await calculateSHA256(filePath);
  return actual === expectedChecksum.replace(/^sha256:/, '');
}

/** `1536` -> `'1.5 KB'` (1024-based, up to PB; `'0 Bytes'` for 0). */
function formatBytes(bytes, decimals = 2) {
  if (bytes === 0) return '0 Bytes';
  const units = ['Bytes', 'KB', 'MB', 'GB', 'TB', 'PB'];
  const i = Math.floor(Math.log(bytes) / Math.log(1024));
  return `${parseFloat((bytes / 1024 ** i).toFixed(Math.max(0, decimals)))} ${units[i]}`;
}

/** Removes `<>:"/\|?*` and control characters, collapses whitespace, trims. */
function sanitizeFilename(filename) {
  // eslint-disable-next-line no-control-regex
  return filename.replace(/[<>:"/\\|?*\x00-\x1F]/g, '').replace(/\s+/g, ' ').trim();
}

module.exports = {
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
};
