'use strict';
/**
 * Small pure helpers genai-electron 0.26 exports from its root: Hugging Face URLs, job ids,
 * reasoning-model detection and context-size rounding.
 */

const { REASONING_MODEL_PATTERNS, CONTEXT_GRANULARITY_LADDER } = require('./constants.js');

/** `https://huggingface.co/<repo>/resolve/<revision>/<file>`, revision and path segments encoded. */
function getHuggingFaceURL(repo, file, revision = 'main') {
  if (typeof revision !== 'string' || revision.trim().length === 0) {
    throw new TypeError('Hugging Face revision must be a non-empty string');
  }
  const encodedFile = file.split('/').map(encodeURIComponent).join('/');
  return `https://huggingface.co/${repo}/resolve/${encodeURIComponent(revision)}/${encodedFile}`;
}

/** `{ repo, revision, file }` of a huggingface.co resolve URL, else null. */
function parseHuggingFaceURL(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.hostname !== 'huggingface.co') return null;
  const parts = parsed.pathname.split('/').filter((p) => p);
  if (parts.length < 4) return null;
  // `<org>/<name>/resolve/...` or `<name>/resolve/...`.
  let at = -1;
  if (parts[2] === 'resolve' && parts.length >= 5) at = 2;
  else if (parts[1] === 'resolve') at = 1;
  if (at === -1) return null;
  const revision = parts[at + 1];
  const fileParts = parts.slice(at + 2);
  if (!revision || fileParts.length === 0) return null;
  try {
    return { repo: parts.slice(0, at).join('/'), revision: decodeURIComponent(revision), file: decodeURIComponent(fileParts.join('/')) };
  } catch {
    return null;
  }
}

/** `gen_<ms>_<9 base-36 characters>`. */
function generateId() {
  return `gen_${Date.now()}_${Math.random().toString(36).substring(2, 11)}`;
}

/** Whether a model file name names a reasoning model (`REASONING_MODEL_PATTERNS`). */
function detectReasoningSupport(filename) {
  const lower = filename.toLowerCase();
  return REASONING_MODEL_PATTERNS.some((p) => lower.includes(p));
}

/** Floors a context size to the step of the first `CONTEXT_GRANULARITY_LADDER` bound it fits. */
function floorContextToGranularity(tokens) {
  for (const [upper, step] of CONTEXT_GRANULARITY_LADDER) {
    if (tokens <= upper) return Math.floor(tokens / step) * step;
  }
  return Math.floor(tokens);
}

module.exports = {
  getHuggingFaceURL,
  parseHuggingFaceURL,
  generateId,
  detectReasoningSupport,
  floorContextToGranularity,
};
