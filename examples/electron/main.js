'use strict';
/**
 * An Electron main process that downloads a preset and generates images, forwarding download and
 * generation progress to the window over IPC. The window (index.html + preload.js) shows a bar for
 * each. In your app, require 'genai-electron-rs' instead of '../..'.
 *
 *   npx electron examples/electron/main.js
 *
 * Storage is Electron's userData folder (found by the library itself). stable-diffusion.cpp's
 * sd-server must be installed: see the README, "The binary".
 *
 * IPC channels (renderer -> main, invoke): 'models:list', 'models:pull' (presetId),
 * 'models:cancel', 'image:generate' ({ modelId, prompt, ...settings }), 'image:cancel'.
 * Main -> renderer (send): 'models:component', 'models:progress', 'image:progress'.
 */
const path = require('node:path');
const { app, BrowserWindow, ipcMain } = require('electron');
const { modelManager, diffusionServer, getPreset, PRESETS } = require('../..');

let win = null;
let download = null; // AbortController of the running download

/** Sends to the window only while it exists: progress may outlive a closed window. */
function toWindow(channel, payload) {
  if (win && !win.isDestroyed()) win.webContents.send(channel, payload);
}

/** Errors cross IPC as plain objects, code included, so the window can react to the code. */
function plainError(err) {
  return { error: { name: err.name, code: err.code, message: err.message } };
}

ipcMain.handle('models:list', async () => modelManager.listModels());

ipcMain.handle('models:pull', async (_event, presetId) => {
  const preset = getPreset(presetId);
  if (!preset) return plainError({ name: 'Error', code: 'PRESET_NOT_FOUND', message: `Unknown preset ${presetId}; one of ${PRESETS.map((p) => p.id).join(', ')}` });
  if (download) return plainError({ name: 'Error', code: 'DOWNLOAD_IN_PROGRESS', message: 'A download is already running' });
  download = new AbortController();
  try {
    return await modelManager.downloadModel({
      ...preset.download,
      signal: download.signal,
      onComponentStart: (info) => toWindow('models:component', { presetId, ...info }),
      // At most every 100 ms (the library throttles), so it can go straight to the window.
      onProgress: (downloaded, total, info) => toWindow('models:progress', { presetId, downloaded, total, ...info }),
    });
  } catch (err) {
    return plainError(err);
  } finally {
    download = null;
  }
});

ipcMain.handle('models:cancel', async () => {
  if (download) download.abort();
});

ipcMain.handle('image:generate', async (_event, { modelId, prompt, ...settings }) => {
  try {
    // One model at a time: start the server for this model, or switch to it.
    const running = diffusionServer.isRunning() ? diffusionServer.getConfig() : undefined;
    if (!running || running.modelId !== modelId) {
      if (running) await diffusionServer.stop();
      await diffusionServer.start({ modelId, port: 'auto' });
    }
    const preset = getPreset(modelId);
    const result = await diffusionServer.generateImage({
      ...(preset && preset.generation),
      ...settings,
      prompt,
      onProgress: (step, totalSteps, stage, percentage) => toWindow('image:progress', { step, totalSteps, stage, percentage }),
    });
    // A Buffer crosses IPC as a Uint8Array: the window makes a Blob URL of it.
    return { image: result.image, width: result.width, height: result.height, seed: result.seed, timeTaken: result.timeTaken };
  } catch (err) {
    return plainError(err);
  }
});

ipcMain.handle('image:cancel', async () => {
  const id = diffusionServer.getActiveGenerationId();
  if (id) await diffusionServer.cancelImageGeneration(id);
});

function createWindow() {
  win = new BrowserWindow({
    width: 900,
    height: 700,
    webPreferences: { preload: path.join(__dirname, 'preload.js'), contextIsolation: true, nodeIntegration: false },
  });
  win.on('closed', () => {
    win = null;
  });
  win.loadFile(path.join(__dirname, 'index.html'));
}

app.whenReady().then(createWindow);

app.on('window-all-closed', () => app.quit());

// Stop sd-server and any download before Electron exits (the library also kills children on exit).
let quitting = false;
app.on('before-quit', (event) => {
  if (quitting) return;
  quitting = true;
  event.preventDefault();
  if (download) download.abort();
  diffusionServer.stop().finally(() => app.quit());
});
