'use strict';
/**
 * `ResourceOrchestrator`: genai-electron 0.26's LLM offload around image generation. When the
 * running LLM and the diffusion model together would use more than 75 % of VRAM (of available
 * RAM without a GPU), the LLM is stopped with its config saved, the image is generated, and the
 * LLM is started again with the same config (after the image in 'single' usage, after the
 * diffusion backend is released in 'burst'; one retry after 2 s). As a llama pre-start hook it
 * releases a resident diffusion backend (reason 'llm-start') when both would not fit.
 */

const binding = require('../binding.js');
const { ServerError } = require('./errors.js');
const { sizingFields } = require('./system-info.js');
const { estimateKVBytesPerToken } = require('./system-helpers.js');
const { sizingHints } = require('./llama-server.js');

const GIB = 1024 ** 3;
const DEFAULT_DIFFUSION_BYTES = 6.5 * GIB;

/** 0.26's expert-bytes estimate (native, the same figure canRunModel and getOptimalConfig use). */
function expertBytes(modelInfo) {
  return binding.llamaExpertWeightsBytes(JSON.stringify(sizingFields(modelInfo))) ?? undefined;
}

class ResourceOrchestrator {
  /**
   * @param {object} systemInfo
   * @param {object} llamaServer
   * @param {object} diffusionServer
   * @param {object} [modelManager]
   */
  constructor(systemInfo, llamaServer, diffusionServer, modelManager) {
    this.systemInfo = systemInfo || require('./system-info.js').SystemInfo.getInstance();
    this.llamaServer = llamaServer;
    this.diffusionServer = diffusionServer;
    this.modelManager = modelManager || require('./model-manager.js').ModelManager.getInstance();
    this.savedLLMState = undefined;
    this.pendingReload = null;
  }

  async orchestrateImageGeneration(config) {
    return this._orchestrate(config, () => this.diffusionServer.executeImageGeneration(config));
  }

  async orchestrateBatchGeneration(config) {
    return this._orchestrate(config, () => this.diffusionServer.executeBatchGeneration(config));
  }

  /** An image already queued (over the HTTP API): `run` lets it go and resolves when it is done. */
  async orchestrateQueuedGeneration(config, run) {
    return this._orchestrate(config, run);
  }

  async _orchestrate(config, run) {
    const inFlight = this.pendingReload;
    if (inFlight) {
      await inFlight;
      if (this.pendingReload === inFlight) this.pendingReload = null;
    }
    const needsOffload = await this._needsOffload();
    if (needsOffload && this.llamaServer.isRunning()) {
      await this.offloadLLM();
      let result;
      try {
        result = await run();
      } catch (error) {
        await this._settleAfterOffload(config);
        throw error;
      }
      await this._settleAfterOffload(config);
      return result;
    }
    try {
      return await run();
    } finally {
      const mode = this.diffusionServer.resolveUsageMode(config && config.usageMode, false);
      await this._settleResidency(mode);
      if (mode === 'single' && this.savedLLMState && !this.pendingReload && !this.diffusionServer.isCalibrating()) {
        this._fireAndForgetReload();
      }
    }
  }

  async _settleAfterOffload(config) {
    // 'auto' becomes 'single' when the LLM was offloaded: the LLM comes back after the image.
    const mode = this.diffusionServer.resolveUsageMode(config && config.usageMode, true);
    await this._settleResidency(mode);
    if (mode === 'single' && !this.pendingReload) this._fireAndForgetReload();
  }

  async _settleResidency(mode) {
    try {
      await this.diffusionServer.settleResidency(mode);
    } catch (error) {
      console.warn('[Orchestrator] Failed to settle diffusion residency:', error);
    }
  }

  /** Called when the diffusion backend goes away: brings a deferred LLM back. */
  onDiffusionBackendReleased(reason) {
    if (!ResourceOrchestrator.RELOAD_RELEASE_REASONS.has(reason)) return;
    if (this.llamaServer.isRunning()) {
      this.savedLLMState = undefined;
      return;
    }
    if (!this.savedLLMState || this.pendingReload || this.diffusionServer.isCalibrating()) return;
    this._fireAndForgetReload();
  }

  /** The llama pre-start hook: makes room by releasing a resident diffusion backend. */
  async prepareForLLMStart(ctx) {
    if (this.diffusionServer.isCalibrating()) {
      throw new ServerError('Cannot start the LLM while diffusion calibration is running', {
        code: 'CALIBRATION_IN_PROGRESS',
        suggestion: 'Wait for calibrate() to finish (it restores the LLM itself), or abort it via its AbortSignal',
      });
    }
    const state = this.diffusionServer.getBackendInfo().state;
    if (!ResourceOrchestrator.RESIDENT_BACKEND_STATES.has(state)) return;
    if (!(await this._needsOffload(ctx.config))) return;
    await this.diffusionServer.releaseBackend({ reason: 'llm-start', waitForInFlight: true });
  }

  async _needsOffload(llmConfigOverride) {
    const memory = this.systemInfo.getMemoryInfo();
    const caps = await this.systemInfo.detect();
    const llm = await this._estimateLLMUsage(llmConfigOverride);
    const diffusion = await this._estimateDiffusionUsage();
    if (caps.gpu.available && caps.gpu.vram) {
      return (llm.vram || 0) + (diffusion.vram || 0) > caps.gpu.vram * 0.75;
    }
    return llm.ram + diffusion.ram > memory.available * 0.75;
  }

  async _estimateLLMUsage(override) {
    let config = override;
    if (!config) {
      if (!this.llamaServer.isRunning()) return { ram: 0, vram: 0 };
      config = this.llamaServer.getConfig();
    }
    if (!config) return { ram: 0, vram: 0 };
    try {
      const modelInfo = await this.modelManager.getModelInfo(config.modelId);
      const totalLayers = await this.modelManager.getModelLayerCount(config.modelId);
      const gpuLayers = override !== undefined && override.gpuLayers === undefined ? await this._estimateAutoGpuLayers(modelInfo, override, totalLayers) : config.gpuLayers || 0;
      const kv = modelInfo.ggufMetadata && modelInfo.ggufMetadata.block_count ? (config.contextSize ?? 4096) * estimateKVBytesPerToken(modelInfo, config.cacheTypeK, config.cacheTypeV) : 0;
      const experts = expertBytes(modelInfo) ?? 0;
      let cpuExperts = 0;
      if (config.cpuMoe === true || config.overrideTensors === 'exps=CPU') cpuExperts = experts;
      else if (typeof config.nCpuMoe === 'number' && config.nCpuMoe > 0) cpuExperts = experts * Math.min(1, config.nCpuMoe / totalLayers);
      const gpuResident = modelInfo.size - cpuExperts;
      if (gpuLayers > 0) {
        const ratio = Math.min(gpuLayers / totalLayers, 1);
        return { ram: (gpuResident * 1.2 + kv) * (1 - ratio) + cpuExperts * 1.2, vram: (gpuResident * 1.2 + kv) * ratio };
      }
      return { ram: modelInfo.size * 1.2 + kv, vram: 0 };
    } catch {
      return { ram: 0, vram: 0 };
    }
  }

  async _estimateAutoGpuLayers(modelInfo, config, totalLayers) {
    try {
      // 0.26 asks with the same hints as a start, less gpuLayers (the very thing it estimates).
      const optimal = await this.systemInfo.getOptimalConfig(modelInfo, { ...sizingHints(config), gpuLayers: undefined });
      if (typeof optimal.gpuLayers === 'number' && Number.isFinite(optimal.gpuLayers)) return optimal.gpuLayers;
    } catch {
      // fall through to the GPU guess
    }
    try {
      const caps = await this.systemInfo.detect();
      return caps.gpu.available && caps.gpu.vram ? totalLayers : 0;
    } catch {
      return 0;
    }
  }

  async _estimateDiffusionUsage() {
    const config = this.diffusionServer.getConfig();
    const fallback = { ram: DEFAULT_DIFFUSION_BYTES * 1.2, vram: DEFAULT_DIFFUSION_BYTES * 1.2 };
    if (!config) return fallback;
    try {
      const modelInfo = await this.modelManager.getModelInfo(config.modelId);
      const usage = modelInfo.size * 1.2;
      return { ram: usage, vram: usage };
    } catch {
      return fallback;
    }
  }

  /** Stops the running LLM and remembers its config for `reloadLLM()`. */
  async offloadLLM() {
    if (!this.llamaServer.isRunning()) return;
    const config = this.llamaServer.getConfig();
    if (!config) throw new ServerError('Cannot offload LLM: no configuration found');
    this.savedLLMState = { config, wasRunning: true, savedAt: new Date() };
    await this.llamaServer.stop();
  }

  /** Starts the LLM again with the saved config; one retry after 2 s. */
  async reloadLLM() {
    if (!this.savedLLMState || !this.savedLLMState.wasRunning) return;
    const saved = this.savedLLMState.config;
    try {
      await this.llamaServer.start(saved);
      this.savedLLMState = undefined;
      return;
    } catch (error) {
      console.warn('[Orchestrator] First reload attempt failed:', error);
    }
    try {
      await this._delay(ResourceOrchestrator.RELOAD_RETRY_DELAY_MS);
      this.systemInfo.clearCache();
      await this.llamaServer.start(saved);
      this.savedLLMState = undefined;
    } catch (error) {
      console.error('[Orchestrator] Failed to reload LLM after retry:', error);
    }
  }

  _fireAndForgetReload() {
    const reload = this.reloadLLM();
    this.pendingReload = reload;
    reload
      .catch(() => undefined)
      .finally(() => {
        if (this.pendingReload === reload) this.pendingReload = null;
      });
  }

  _delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  clearSavedState() {
    this.savedLLMState = undefined;
  }

  getSavedState() {
    return this.savedLLMState;
  }

  /** Resolves when a reload in flight has finished. */
  async waitForReload() {
    const inFlight = this.pendingReload;
    if (inFlight) {
      await inFlight;
      if (this.pendingReload === inFlight) this.pendingReload = null;
    }
  }

  async wouldNeedOffload() {
    return this._needsOffload();
  }
}

ResourceOrchestrator.RELOAD_RETRY_DELAY_MS = 2000;
ResourceOrchestrator.RELOAD_RELEASE_REASONS = new Set(['idle-timeout', 'explicit', 'crashed', 'stop', 'cancel', 'stuck']);
ResourceOrchestrator.RESIDENT_BACKEND_STATES = new Set(['starting', 'ready', 'busy']);

module.exports = { ResourceOrchestrator };
