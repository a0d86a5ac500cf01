'use strict';
/**
 * Both servers together, end to end with the fake llama-server and the fake sd-server:
 * attachAppLifecycle stops both on `before-quit` and leaves no process.
 */
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const g = require('..');
const hl = require('./helpers/llama.js');
const hd = require('./helpers/diffusion.js');

let root;
let sd;

before(() => {
  sd = hd.setup();
  root = sd.root;
  g.configure({ userDataPath: root });
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = hd.machine(sd.tmp, 24, { ramGiB: 64 });
  process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR = hl.FAKE_LLAMA_DIR;
  process.env.FAKE_SD_STEP_MS = '2';
  hl.llmRecord(root, { id: 'chat-llm' });
  hd.kleinRecord(root);
});

function fakeApp() {
  const app = new EventEmitter();
  app.exited = new Promise((resolve) => {
    app.exit = resolve;
  });
  return app;
}

test('attachAppLifecycle stops the LLM and the diffusion server on before-quit, leaving no process', async () => {
  const llama = new g.LlamaServerManager();
  const diffusion = new g.DiffusionServerManager();
  const app = fakeApp();
  g.attachAppLifecycle(app, { llamaServer: llama, diffusionServer: diffusion });
  const llm = await llama.start({ modelId: 'chat-llm', port: 'auto', occupancyCheck: 'off' });
  await diffusion.start({ modelId: 'flux-2-klein', port: 'auto', binaryPath: sd.binaryPath });
  await diffusion.generateImage({ prompt: 'warm up', width: 64, height: 64, steps: 1 });
  assert.ok(hd.processesMatching(root).length >= 2, 'both servers run');
  const event = { prevented: 0, preventDefault() { this.prevented += 1; } };
  app.emit('before-quit', event);
  assert.equal(event.prevented, 1);
  assert.equal(await app.exited, 0);
  assert.equal(llama.getStatus(), 'stopped');
  assert.equal(diffusion.getStatus(), 'stopped');
  assert.equal(hl.processAlive(llm.pid), false);
  assert.deepEqual(hd.processesMatching(root), []);
});
