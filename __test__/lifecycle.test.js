'use strict';
/** attachAppLifecycle on a fake Electron app's `before-quit`, with managers that record calls. */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const g = require('..');
const { tempDir } = require('./helpers/system.js');

/** An Electron-like app whose exit() resolves `exited`. */
function fakeApp() {
  const app = new EventEmitter();
  app.exitCodes = [];
  app.exited = new Promise((resolve) => {
    app.exit = (code) => {
      app.exitCodes.push(code);
      resolve(code);
    };
  });
  app.quit = () => {
    const event = { prevented: 0, preventDefault() { this.prevented += 1; } };
    app.emit('before-quit', event);
    return event;
  };
  return app;
}

/** A server manager that records calls into `log` under `name`. */
function fakeServer(log, name, { status = 'running', release = true, releaseFails = false } = {}) {
  const s = {
    getStatus() {
      log.push(`${name}.getStatus`);
      return status;
    },
    async stop() {
      log.push(`${name}.stop`);
      status = 'stopped';
    },
  };
  if (release) {
    s.releaseBackend = async (options) => {
      log.push(`${name}.releaseBackend ${JSON.stringify(options)}`);
      if (releaseFails) throw new Error('release failed');
    };
  }
  return s;
}

function quietConsole(t) {
  for (const m of ['log', 'error']) t.mock.method(console, m, () => {});
}

test('before-quit holds the quit, stops llama, releases and stops diffusion, then exits 0', async (t) => {
  quietConsole(t);
  const log = [];
  const app = fakeApp();
  g.attachAppLifecycle(app, { llamaServer: fakeServer(log, 'llama', { release: false }), diffusionServer: fakeServer(log, 'diffusion') });
  const event = app.quit();
  assert.equal(event.prevented, 1, 'preventDefault() is called synchronously');
  assert.equal(await app.exited, 0);
  assert.deepEqual(log, [
    'llama.getStatus',
    'llama.stop',
    'diffusion.releaseBackend {"reason":"shutdown"}',
    'diffusion.getStatus',
    'diffusion.stop',
  ]);
});

test('servers already stopped are not stopped again; a manager without releaseBackend is fine', async (t) => {
  quietConsole(t);
  const log = [];
  const app = fakeApp();
  g.attachAppLifecycle(app, { diffusionServer: fakeServer(log, 'diffusion', { status: 'stopped', release: false }) });
  app.quit();
  assert.equal(await app.exited, 0);
  assert.deepEqual(log, ['diffusion.getStatus']);
});

test('a failing releaseBackend or stop still ends in exit(0)', async (t) => {
  quietConsole(t);
  const log = [];
  const app = fakeApp();
  const diffusion = fakeServer(log, 'diffusion', { releaseFails: true });
  const llama = fakeServer(log, 'llama', { release: false });
  llama.stop = async () => {
    log.push('llama.stop');
    throw new Error('stop failed');
  };
  g.attachAppLifecycle(app, { llamaServer: llama, diffusionServer: diffusion });
  app.quit();
  assert.equal(await app.exited, 0);
  // As genai-electron: a failing llama stop skips the diffusion steps, but the app still exits.
  assert.deepEqual(log, ['llama.getStatus', 'llama.stop']);
  const log2 = [];
  const app2 = fakeApp();
  g.attachAppLifecycle(app2, { diffusionServer: fakeServer(log2, 'diffusion', { releaseFails: true }) });
  app2.quit();
  assert.equal(await app2.exited, 0);
  assert.deepEqual(log2, ['diffusion.releaseBackend {"reason":"shutdown"}', 'diffusion.getStatus', 'diffusion.stop']);
});

test('a second before-quit during cleanup is held and starts no second cleanup', async (t) => {
  quietConsole(t);
  const log = [];
  const app = fakeApp();
  let finishStop;
  const diffusion = fakeServer(log, 'diffusion', { release: false });
  diffusion.stop = () => {
    log.push('diffusion.stop');
    return new Promise((resolve) => {
      finishStop = resolve;
    });
  };
  g.attachAppLifecycle(app, { diffusionServer: diffusion });
  app.quit();
  while (!finishStop) await new Promise(setImmediate);
  const second = app.quit();
  assert.equal(second.prevented, 1);
  finishStop();
  await app.exited;
  assert.deepEqual(app.exitCodes, [0]);
  assert.deepEqual(log, ['diffusion.getStatus', 'diffusion.stop']);
});

test('works with the real diffusionServer singleton (stopped)', async (t) => {
  quietConsole(t);
  g.configure({ userDataPath: tempDir('genai-rs-lifecycle-') });
  const app = fakeApp();
  g.attachAppLifecycle(app, { diffusionServer: g.diffusionServer });
  app.quit();
  assert.equal(await app.exited, 0);
  assert.equal(g.diffusionServer.getStatus(), 'stopped');
});

test('refuses something that is not an app', () => {
  assert.throws(() => g.attachAppLifecycle({}, {}), TypeError);
});
