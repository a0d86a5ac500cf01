'use strict';
/**
 * examples/electron/main.js runs as an Electron main process on a fake `electron` module (no
 * Electron needed): the test plays the window over IPC, pulls the Flux 2 Klein preset from the
 * local Hugging Face-like server and generates with the fake sd-server, and checks that download
 * and generation progress reached the window, that storage is Electron's userData, and that
 * quitting stops sd-server.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startHfServer } = require('./fixtures/hf-server.js');
const { tempRoot } = require('./helpers/storage.js');
const { ROOT, FAKE_SD, serveKlein } = require('./helpers/cli.js');
const { getPreset } = require('..');

const MAIN = path.join(ROOT, 'examples', 'electron', 'main.js');
const REGISTER = path.join(__dirname, 'fixtures', 'electron-fake', 'register.js');
let srv;

before(async () => {
  srv = await startHfServer();
  serveKlein(srv);
});

after(async () => {
  await srv.close();
});

/** The example as a child process, and a window that invokes handlers and records what it is sent. */
function startApp(userData, main = MAIN, cwd = undefined) {
  const child = fork(main, [], {
    cwd,
    execArgv: ['-r', REGISTER],
    // The served model files are headers only: the fake sd-server generates from them when told so.
    env: { ...process.env, HF_ENDPOINT: srv.url, FAKE_ELECTRON_USER_DATA: userData, GENAI_ELECTRON_SD_BINARY_DIR: FAKE_SD, GENAI_ELECTRON_USER_DATA: '', FAKE_SD_HEADER_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const received = [];
  const pending = new Map();
  let next = 0;
  let loaded;
  const ready = new Promise((resolve) => (loaded = resolve));
  const exited = new Promise((resolve) =>
    child.on('exit', (code) => {
      // A crashed app answers nothing more: fail what waits, with its stderr.
      for (const p of pending.values()) p.reject(new Error(`the app exited (${code}):\n${stderr}`));
      pending.clear();
      resolve(code);
    }),
  );
  child.on('message', (msg) => {
    if (msg.loaded) loaded(msg);
    else if (msg.send) received.push(msg);
    else if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.threw) p.reject(new Error(msg.threw));
      else p.resolve(msg.result);
    }
  });
  return {
    child,
    received,
    ready,
    exited,
    stderr: () => stderr,
    invoke(channel, ...args) {
      const id = next++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, invoke: channel, args });
      });
    },
  };
}

test('examples/electron/main.js forwards download and generation progress to the window', async () => {
  const userData = tempRoot('genai-electron-app-');
  const win = startApp(userData);
  const loaded = await win.ready;
  assert.equal(loaded.loaded, path.join(ROOT, 'examples', 'electron', 'index.html'));
  assert.ok(fs.existsSync(loaded.preload), 'the preload script exists');
  for (const f of ['index.html', 'preload.js']) assert.ok(fs.existsSync(path.join(ROOT, 'examples', 'electron', f)));

  const unknown = await win.invoke('models:pull', 'no-such-preset');
  assert.equal(unknown.error.code, 'PRESET_NOT_FOUND');

  const model = await win.invoke('models:pull', 'flux-2-klein-4b-q80');
  assert.equal(model.error, undefined, JSON.stringify(model.error));
  assert.equal(model.id, 'flux-2-klein-4b-q80');
  // Storage is Electron's userData, found by the library through app.getPath('userData').
  assert.ok(fs.existsSync(path.join(userData, 'models', 'diffusion', 'flux-2-klein-4b-q80.json')));

  const components = win.received.filter((m) => m.send === 'models:component').map((m) => m.payload.role);
  assert.deepEqual(components, ['diffusion_model', 'llm', 'vae']);
  const progress = win.received.filter((m) => m.send === 'models:progress').map((m) => m.payload);
  assert.ok(progress.length >= 1);
  const last = progress[progress.length - 1];
  assert.equal(last.downloaded, model.size);
  assert.equal(last.total, model.size);
  assert.equal(last.phase, 'done');
  assert.equal(last.presetId, 'flux-2-klein-4b-q80');

  const listed = await win.invoke('models:list');
  assert.deepEqual(listed.map((m) => m.id), ['flux-2-klein-4b-q80']);

  const image = await win.invoke('image:generate', { modelId: 'flux-2-klein-4b-q80', prompt: 'a lighthouse', width: 256, height: 256 });
  assert.equal(image.error, undefined, JSON.stringify(image.error));
  const png = Buffer.from(image.image.data);
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.deepEqual([image.width, image.height], [256, 256]);
  const steps = win.received.filter((m) => m.send === 'image:progress').map((m) => m.payload);
  assert.ok(steps.some((s) => s.stage === 'diffusion' && s.step === 4 && s.totalSteps === 4), JSON.stringify(steps));

  const bad = await win.invoke('image:generate', { modelId: 'no-such-model', prompt: 'x' });
  assert.equal(bad.error.code, 'MODEL_NOT_FOUND');
  // The running server was stopped to switch models; generating with the good one starts it again.
  const again = await win.invoke('image:generate', { modelId: 'flux-2-klein-4b-q80', prompt: 'again', width: 64, height: 64 });
  assert.equal(again.error, undefined, JSON.stringify(again.error));

  const logs = fs.readFileSync(path.join(userData, 'logs', 'diffusion-server.log'), 'utf8');
  const pids = [...logs.matchAll(/sd-server ready \(pid (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 2, 'one sd-server per model switch');
  win.child.send({ quit: true });
  assert.equal(await win.exited, 0, win.stderr());
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `sd-server ${pid} is gone`);
});

test('docs/migration.md: the 0.26 main process runs on this package after changing its import line', async () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'migration.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Before and after'));
  const [before, importLine] = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.match(before, /require\('genai-electron'\)/);
  // Only the import line changes; port 8081 becomes a free port, as the test machine may use 8081.
  const after = before.replace(/^const .* = require\('genai-electron'\);$/m, importLine.trim()).replace('port: 8081', "port: 'auto'");
  assert.notEqual(after, before);
  assert.match(after, /port: 'auto'/);
  const dir = tempRoot('genai-migrated-app-');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'genai-electron-rs'), 'junction');
  fs.writeFileSync(path.join(dir, 'main.js'), after);
  const userData = tempRoot('genai-migrated-data-');
  const win = startApp(userData, path.join(dir, 'main.js'), dir);
  await win.ready;
  const model = await win.invoke('download', {
    source: 'huggingface',
    repo: 'leejet/FLUX.2-klein-4B-GGUF',
    file: 'flux-2-klein-4b-Q8_0.gguf',
    name: 'Flux 2 Klein 4B Q8_0',
    type: 'diffusion',
    components: getPreset('flux-2-klein-4b-q80').download.components,
  });
  assert.equal(model.id, 'flux-2-klein-4b-q80');
  const progress = win.received.filter((m) => m.send === 'progress').map((m) => m.args);
  assert.deepEqual(progress[progress.length - 1], [model.size, model.size]);
  const image = await win.invoke('generate', model.id, 'a lighthouse');
  assert.deepEqual([...Buffer.from(image.data).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  win.child.send({ quit: true });
  assert.equal(await win.exited, 0, win.stderr());
});
