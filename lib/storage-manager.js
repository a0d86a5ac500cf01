'use strict';
/** `StorageManager`, as genai-electron exports it: paths, records and integrity by type and id. */

const path = require('node:path');
const binding = require('../binding.js');
const { native, FileSystemError } = require('./errors.js');
const { getUserDataPath } = require('./user-data.js');

const SANITIZE = /[<>:"/\\|?*\u0000-\u001f\u007f-\u009f]/g;

class StorageManager {
  static getInstance() {
    if (!StorageManager._instance) StorageManager._instance = new StorageManager();
    return StorageManager._instance;
  }

  constructor() {
    this._initialized = false;
  }

  async initialize() {
    if (this._initialized) return;
    await native(binding.storageInitialize(getUserDataPath()));
    this._initialized = true;
  }

  resetInitialization() {
    this._initialized = false;
  }

  getModelPath(type, filename) {
    const clean = String(filename).replace(SANITIZE, '').split(/\s+/).filter(Boolean).join(' ');
    return path.join(getUserDataPath(), 'models', type, clean);
  }

  getModelMetadataPath(type, id) {
    return path.join(getUserDataPath(), 'models', type, `${id}.json`);
  }

  async saveModelMetadata(info) {
    await native(binding.saveModelMetadata(getUserDataPath(), info));
  }

  async loadModelMetadata(type, id) {
    return native(binding.loadModelMetadata(getUserDataPath(), type, id));
  }

  async deleteModelFiles(type, id) {
    const info = await this.loadModelMetadata(type, id);
    await native(binding.deleteModel(getUserDataPath(), info.id));
  }

  async listModelFiles(type) {
    return (await native(binding.listModels(getUserDataPath(), type))).map((m) => m.id);
  }

  /** Real free bytes on the volume that holds the models directory. */
  async checkDiskSpace() {
    return native(binding.freeDiskSpace(path.join(getUserDataPath(), 'models')));
  }

  async verifyModelIntegrity(type, id) {
    const info = await this.loadModelMetadata(type, id);
    return native(binding.verifyModel(getUserDataPath(), info.id));
  }

  async getStorageUsed(type) {
    return native(binding.storageUsed(getUserDataPath(), type));
  }
}

module.exports = { StorageManager, FileSystemError };
