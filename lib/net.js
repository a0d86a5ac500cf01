'use strict';
/**
 * genai-electron's server plumbing helpers: `/health` probes with backoff and port probes.
 * Same signatures, defaults and results as genai-electron 0.26.
 */

// node:net (with the stream and dns modules it pulls in) is loaded on first use, not at require
// time: an app that only downloads models never needs it, and loading it costs about 1.7 MiB of
// memory and a few milliseconds of startup.
let netModule = null;
function net() {
  if (!netModule) netModule = require('node:net');
  return netModule;
}
const { ServerError } = require('./errors.js');

/** `[::1]` for an IPv6 literal, the host unchanged otherwise. */
function httpHost(host) {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The address to probe for a server bound to `host` (a wildcard bind is reached on loopback). */
function normalizeHealthHost(host) {
  if (host === '::') return '::1';
  if (host === undefined || host === '' || host === '0.0.0.0') return '127.0.0.1';
  return host;
}

function abortError(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function sleep(ms, signal) {
  if (!signal) return new Promise((resolve) => setTimeout(resolve, ms));
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `GET /health` within `timeout` ms: the server's JSON (status `ok|loading|error|unknown`), or
 * `{ status: 'error' }` for a non-2xx answer, or `{ status: 'unknown' }` when nothing answered.
 */
async function checkHealth(port, timeout = 5000, host = '127.0.0.1', signal) {
  const limit = AbortSignal.timeout(timeout);
  try {
    const response = await fetch(`http://${httpHost(host)}:${port}/health`, {
      signal: signal ? AbortSignal.any([limit, signal]) : limit,
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) {
      await response.body?.cancel();
      return { status: 'error' };
    }
    let data;
    try {
      data = await response.json();
    } catch {
      return { status: response.status === 200 ? 'ok' : 'unknown' };
    }
    if (data === null || typeof data !== 'object') return { status: 'unknown' };
    return ['ok', 'loading', 'error', 'unknown'].includes(data.status) ? data : { ...data, status: 'unknown' };
  } catch {
    return { status: 'unknown' };
  }
}

/**
 * Polls `/health` until it says `ok`, waiting `initialDelay` ms and then 1.5 times longer each
 * time (at most `maxDelay`). `ServerError` after `timeout` ms; `signal` aborts the wait.
 */
async function waitForHealthy(port, timeout = 120000, initialDelay = 100, maxDelay = 2000, host = '127.0.0.1', signal) {
  const started = Date.now();
  let delay = initialDelay;
  let attempts = 0;
  while (Date.now() - started < timeout) {
    signal?.throwIfAborted();
    attempts += 1;
    const health = await checkHealth(port, 5000, host, signal);
    if (health.status === 'ok') return;
    await sleep(delay, signal);
    delay = Math.min(delay * 1.5, maxDelay);
    if (Date.now() - started >= timeout) {
      throw new ServerError(`Server health check timeout after ${timeout}ms (${attempts} attempts)`, {
        port,
        timeout,
        attempts,
        suggestion: 'Check server logs for startup errors or increase timeout',
      });
    }
  }
  throw new ServerError(`Server health check timeout after ${timeout}ms`, { port, timeout, attempts });
}

/** True when `/health` answers 2xx within `timeout` ms. */
async function isServerResponding(port, timeout = 2000, host = '127.0.0.1') {
  try {
    const response = await fetch(`http://${httpHost(host)}:${port}/health`, { signal: AbortSignal.timeout(timeout) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** A port the OS had free a moment ago on `host`. */
function findFreePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net().createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close(() => reject(new Error('Failed to allocate a free port')));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}

/** Whether `port` can be bound on `host` now (false when in use; other errors reject). */
function isPortBindable(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net().createServer();
    server.unref();
    server.once('error', (error) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

module.exports = { checkHealth, waitForHealthy, isServerResponding, normalizeHealthHost, findFreePort, isPortBindable };
