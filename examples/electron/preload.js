'use strict';
/** The window's only access to the main process: a small, explicit API (context isolation on). */
const { contextBridge, ipcRenderer } = require('electron');

function subscribe(channel) {
  return (listener) => {
    const wrapped = (_event, payload) => listener(payload);
    ipcRenderer.on(channel, wrapped);
    return () => ipcRenderer.removeListener(channel, wrapped);
  };
}

contextBridge.exposeInMainWorld('genai', {
  listModels: () => ipcRenderer.invoke('models:list'),
  pull: (presetId) => ipcRenderer.invoke('models:pull', presetId),
  cancelPull: () => ipcRenderer.invoke('models:cancel'),
  generate: (request) => ipcRenderer.invoke('image:generate', request),
  cancelGenerate: () => ipcRenderer.invoke('image:cancel'),
  onComponent: subscribe('models:component'),
  onDownloadProgress: subscribe('models:progress'),
  onImageProgress: subscribe('image:progress'),
});
