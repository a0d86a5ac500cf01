'use strict';
/**
 * The contract's error classes, and the one place that turns a native error payload back into an
 * instance of them (the Rust side of the mapping is src/api/errors.rs).
 */

const MARKER = '__GENAI_ELECTRON_ERROR__';

class GenaiElectronError extends Error {
  constructor(message, code, details) {
    super(message);
    this.name = new.target.name;
    Object.defineProperty(this, 'code', { value: code, enumerable: true });
    if (details !== undefined) this.details = details;
  }
}

class ModelNotFoundError extends GenaiElectronError {
  constructor(modelId) {
    super(`Model not found: ${modelId}`, 'MODEL_NOT_FOUND', {
      modelId,
      suggestion: 'Check the model id with modelManager.listModels(), or download the model first.',
    });
  }
}

class DownloadError extends GenaiElectronError {
  constructor(message, details) {
    super(`Download failed: ${message}`, 'DOWNLOAD_FAILED', details);
  }
}

class InsufficientResourcesError extends GenaiElectronError {
  constructor(message, details) {
    super(message, 'INSUFFICIENT_RESOURCES', details);
  }
}

class ServerError extends GenaiElectronError {
  constructor(message, details) {
    super(`Server error: ${message}`, 'SERVER_ERROR', details);
  }
}

class PortInUseError extends GenaiElectronError {
  constructor(port) {
    super(`Port ${port} is already in use`, 'PORT_IN_USE', {
      port,
      suggestion: `Stop the program using port ${port}, or start with another port (or port: 'auto').`,
    });
  }
}

class FileSystemError extends GenaiElectronError {
  constructor(message, details) {
    super(`File system error: ${message}`, 'FILE_SYSTEM_ERROR', details);
  }
}

class ChecksumError extends GenaiElectronError {
  constructor(message, details) {
    const d = { ...(details || {}) };
    if (d.suggestion === undefined) d.suggestion = 'The file is corrupted or was modified. Delete the model and download it again.';
    super(`Checksum verification failed: ${message}`, 'CHECKSUM_ERROR', d);
  }
}

class BinaryError extends GenaiElectronError {
  constructor(message, details) {
    super(`Binary error: ${message}`, 'BINARY_ERROR', details);
  }
}

const CLASSES = {
  DownloadError,
  InsufficientResourcesError,
  ServerError,
  FileSystemError,
  ChecksumError,
  BinaryError,
};

/** Rebuilds a contract error from a native error; other errors pass through unchanged. */
function fromNative(err) {
  const msg = err && typeof err.message === 'string' ? err.message : '';
  const at = msg.indexOf(MARKER);
  if (at < 0) return err;
  let p;
  try {
    p = JSON.parse(msg.slice(at + MARKER.length));
  } catch {
    return err;
  }
  let out;
  if (p.class === 'ModelNotFoundError') out = new ModelNotFoundError(p.modelId);
  else if (p.class === 'PortInUseError') out = new PortInUseError(p.port);
  else if (p.class === 'TypeError') out = new TypeError(p.message);
  else if (CLASSES[p.class]) {
    const details = p.details && Object.keys(p.details).length > 0 ? p.details : undefined;
    out = new CLASSES[p.class](p.message, details);
  } else return err;
  return out;
}

/** Awaits a native promise, rethrowing its error as a contract error class. */
async function native(promise) {
  try {
    return await promise;
  } catch (err) {
    throw fromNative(err);
  }
}

/** The same for a synchronous native call. */
function nativeSync(fn) {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

module.exports = {
  GenaiElectronError,
  ModelNotFoundError,
  DownloadError,
  InsufficientResourcesError,
  ServerError,
  PortInUseError,
  FileSystemError,
  ChecksumError,
  BinaryError,
  fromNative,
  native,
  nativeSync,
};
