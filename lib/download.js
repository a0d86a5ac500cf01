'use strict';
/**
 * `modelManager.downloadModel` / `cancelDownload` / `isDownloading`: adapts the JS call (callbacks,
 * AbortSignal, environment) to the native download, which does all the work off the main thread.
 */

const binding = require('../binding.js');
const { native, DownloadError } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');

/** Cancel tokens of the downloads running in this process. */
const active = new Set();

function isAbortSignal(s) {
  return s !== null && typeof s === 'object' && typeof s.aborted === 'boolean' && typeof s.addEventListener === 'function';
}

function invalid(message) {
  return new DownloadError(message, { invalidConfig: true });
}

function cancelled(reason) {
  const details = { cancelled: true };
  if (reason !== undefined) details.reason = reason instanceof Error ? reason.message : String(reason);
  return new DownloadError('Download cancelled', details);
}

/**
 * Calls the user's callbacks; an exception thrown by one is swallowed (as genai-electron does), so
 * a buggy progress handler can never break or crash a download.
 */
function dispatcher(onProgress, onComponentStart) {
  if (!onProgress && !onComponentStart) return undefined;
  return (ev) => {
    try {
      if (ev.kind === 'progress') {
        if (onProgress) {
          onProgress(ev.downloaded, ev.total, {
            bytesPerSecond: ev.bytesPerSecond,
            etaSeconds: ev.etaSeconds,
            component: ev.component,
            file: ev.file,
            phase: ev.phase,
            components: ev.components,
          });
        }
      } else if (ev.kind === 'componentStart') {
        if (onComponentStart) onComponentStart({ role: ev.role, filename: ev.filename, index: ev.index, total: ev.total });
      }
    } catch {
      // Deliberately ignored: see above.
    }
  };
}

/** The Hugging Face hub cache as huggingface_hub finds it: HF_HUB_CACHE, HF_HOME/hub, ~/.cache. */
function defaultHfCache() {
  const path = require('node:path');
  const os = require('node:os');
  if (process.env.HF_HUB_CACHE) return path.resolve(process.env.HF_HUB_CACHE);
  if (process.env.HF_HOME) return path.resolve(process.env.HF_HOME, 'hub');
  const home = os.homedir();
  return home ? path.join(home, '.cache', 'huggingface', 'hub') : false;
}

async function downloadModel(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw invalid('The download config must be an object');
  }
  const { onProgress, onComponentStart, signal, ...rest } = config;
  if (onProgress != null && typeof onProgress !== 'function') throw invalid('onProgress must be a function');
  if (onComponentStart != null && typeof onComponentStart !== 'function') {
    throw invalid('onComponentStart must be a function');
  }
  if (signal != null && !isAbortSignal(signal)) throw invalid('signal must be an AbortSignal');
  // The environment is read here, on the JS thread, and passed explicitly.
  if (rest.hfEndpoint == null && process.env.HF_ENDPOINT) rest.hfEndpoint = process.env.HF_ENDPOINT;
  if (rest.hfToken == null && process.env.HF_TOKEN) rest.hfToken = process.env.HF_TOKEN;
  if (rest.huggingFaceCache === undefined) rest.huggingFaceCache = defaultHfCache();
  if (signal && signal.aborted) throw cancelled(signal.reason);

  const token = binding.downloadCreateToken();
  active.add(token);
  const onAbort = () => binding.downloadCancel(token);
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await native(binding.downloadModel(getUserDataPath(), rest, token, dispatcher(onProgress, onComponentStart)));
  } catch (err) {
    if (signal && signal.aborted && err instanceof DownloadError && err.details && err.details.cancelled) {
      throw cancelled(signal.reason);
    }
    throw err;
  } finally {
    active.delete(token);
    binding.downloadReleaseToken(token);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/** Cancels every download running in this process (each rejects with DownloadError 'Download cancelled'). */
function cancelDownload() {
  for (const token of active) binding.downloadCancel(token);
}

/** True from the call to downloadModel() until its Promise settles. */
function isDownloading() {
  return active.size > 0;
}

module.exports = { downloadModel, cancelDownload, isDownloading };
