'use strict';
/**
 * The contract's error classes, and the one place that turns a native error payload back into an
 * instance of them (the Rust side of the mapping is src/api/errors.rs).
 */

const MARKER = '__GENAI_ELECTRON_ERROR__';

class GenaiElectronError extends Error {
  constructor(message, code, details) {
    super(message);
    this.name = 'GenaiElectronError';
    this.code = code;
    // Always an own property (undefined when not given), as in genai-electron.
    this.details = details;
  }
}

class ContextConstraintError extends GenaiElectronError {
  constructor(message, details) {
    super(`Context constraint error: ${message}`, 'CONTEXT_CONSTRAINT_ERROR', details);
    this.name = 'ContextConstraintError';
  }
}

class ModelNotFoundError extends GenaiElectronError {
  constructor(modelId) {
    super(`Model not found: ${modelId}`, 'MODEL_NOT_FOUND', {
      modelId,
      suggestion: 'Use modelManager.listModels() to see available models',
    });
    this.name = 'ModelNotFoundError';
  }
}

class DownloadError extends GenaiElectronError {
  constructor(message, details) {
    super(`Download failed: ${message}`, 'DOWNLOAD_FAILED', details);
    this.name = 'DownloadError';
  }
}

class InsufficientResourcesError extends GenaiElectronError {
  constructor(message, details) {
    super(message, 'INSUFFICIENT_RESOURCES', details);
    this.name = 'InsufficientResourcesError';
  }
}

class ServerError extends GenaiElectronError {
  constructor(message, details) {
    super(`Server error: ${message}`, 'SERVER_ERROR', details);
    this.name = 'ServerError';
  }
}

/** A calibration stopped because the machine's free RAM/VRAM moved (`details.code`). */
class LlamaCalibrationResourceStabilityError extends ServerError {
  constructor(message, details) {
    super(message, details);
    this.name = 'LlamaCalibrationResourceStabilityError';
  }
}

class PortInUseError extends GenaiElectronError {
  constructor(port) {
    super(`Port ${port} is already in use`, 'PORT_IN_USE', {
      port,
      suggestion: `Choose a different port or stop the process using port ${port}`,
    });
    this.name = 'PortInUseError';
  }
}

class FileSystemError extends GenaiElectronError {
  constructor(message, details) {
    super(`File system error: ${message}`, 'FILE_SYSTEM_ERROR', details);
    this.name = 'FileSystemError';
  }
}

/**
 * Unlike genai-electron, a suggestion given by the caller is kept (the integrity check says
 * "delete and download again", which fits a file that changed on disk better).
 */
class ChecksumError extends GenaiElectronError {
  constructor(message, details) {
    const d = { ...(details || {}) };
    if (d.suggestion === undefined) d.suggestion = 'The downloaded file may be corrupted. Try downloading again.';
    super(`Checksum verification failed: ${message}`, 'CHECKSUM_ERROR', d);
    this.name = 'ChecksumError';
  }
}

class BinaryError extends GenaiElectronError {
  constructor(message, details) {
    super(`Binary error: ${message}`, 'BINARY_ERROR', details);
    this.name = 'BinaryError';
  }
}

const CLASSES = {
  ContextConstraintError,
  DownloadError,
  InsufficientResourcesError,
  ServerError,
  LlamaCalibrationResourceStabilityError,
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
  fromNative,
  native,
  nativeSync,
};
