'use strict';
/**
 * `attachAppLifecycle(app, { llamaServer, diffusionServer })`: on Electron's `before-quit`, hold
 * the quit, stop the servers, then exit, so no llama-server or sd-server outlives the app.
 * Works with any manager present: `releaseBackend` is called only where the diffusion manager has
 * it. A second `before-quit` while cleanup runs is held too, and does not start another cleanup.
 */

function isRunning(manager) {
  return typeof manager.getStatus === 'function' && manager.getStatus() === 'running';
}

async function cleanUp({ llamaServer, diffusionServer }) {
  try {
    if (llamaServer && isRunning(llamaServer)) {
      console.log('[genai-electron] Stopping LLM server...');
      await llamaServer.stop();
      console.log('[genai-electron] LLM server stopped');
    }
    if (diffusionServer && typeof diffusionServer.releaseBackend === 'function') {
      try {
        await diffusionServer.releaseBackend({ reason: 'shutdown' });
      } catch (error) {
        console.error('[genai-electron] Error releasing diffusion backend:', error);
      }
    }
    if (diffusionServer && isRunning(diffusionServer)) {
      console.log('[genai-electron] Stopping diffusion server...');
      await diffusionServer.stop();
      console.log('[genai-electron] Diffusion server stopped');
    }
  } catch (error) {
    console.error('[genai-electron] Error during server cleanup:', error);
  }
}

function attachAppLifecycle(app, managers) {
  if (!app || typeof app.on !== 'function' || typeof app.exit !== 'function') {
    throw new TypeError('attachAppLifecycle: app must be an Electron app (with on() and exit())');
  }
  const servers = managers || {};
  let cleaning = null;
  app.on('before-quit', (event) => {
    if (event && typeof event.preventDefault === 'function') event.preventDefault();
    if (cleaning) return;
    cleaning = cleanUp(servers).finally(() => app.exit(0));
  });
}

module.exports = { attachAppLifecycle };
