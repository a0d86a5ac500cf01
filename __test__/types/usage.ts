// Compiled with `tsc --noEmit --strict` by types.test.js: the public declarations must describe
// how the library is used (this file is the README's examples, typed).
import {
  configure,
  modelManager,
  diffusionServer,
  systemInfo,
  ModelNotFoundError,
  DownloadError,
  ChecksumError,
  GenaiElectronError,
  DIFFUSION_COMPONENT_FLAGS,
  DIFFUSION_COMPONENT_ORDER,
  DEFAULT_PORTS,
  PATHS,
  getModelDirectory,
  fetchLocalGGUFModelMetadata,
  StorageManager,
} from '../../index';
import type {
  DiffusionBackendState,
  DiffusionCalibrationReport,
  ModelInfo,
  DownloadConfig,
  DiffusionComponentRole,
  GGUFMetadata,
  ImageGenerationResult,
  DiffusionServerInfo,
  SystemCapabilities,
  GPUInfo,
  MemoryInfo,
} from '../../index';

async function main(): Promise<void> {
  configure({ userDataPath: '/tmp/x' });
  const controller = new AbortController();
  const config: DownloadConfig = {
    source: 'huggingface',
    repo: 'leejet/FLUX.2-klein-4B-GGUF',
    file: 'flux-2-klein-4b-Q8_0.gguf',
    name: 'Flux 2 Klein',
    type: 'diffusion',
    modelDirectory: 'flux-2-klein',
    components: [{ role: 'llm', source: 'huggingface', repo: 'unsloth/Qwen3-4B-GGUF', file: 'Qwen3-4B-Q4_0.gguf' }],
    onProgress: (downloaded: number, total: number) => void (downloaded / total),
    onComponentStart: ({ role, index, total }) => void `${role} ${index}/${total}`,
    signal: controller.signal,
  };
  const info: ModelInfo = await modelManager.downloadModel(config);
  const roles: DiffusionComponentRole[] = Object.keys(info.components ?? {}) as DiffusionComponentRole[];
  const flags: string[] = roles.map((r) => DIFFUSION_COMPONENT_FLAGS[r]);
  void flags;
  void DIFFUSION_COMPONENT_ORDER.includes('vae');
  const port: number = DEFAULT_PORTS.diffusion;
  void port;
  const ok: boolean = await modelManager.verifyModel(info.id);
  void ok;
  const meta: GGUFMetadata = await fetchLocalGGUFModelMetadata(info.path);
  void meta.block_count;
  modelManager.cancelDownload();
  const busy: boolean = modelManager.isDownloading();
  void busy;
  void PATHS.models.diffusion;
  void getModelDirectory('diffusion', info.id);
  void (await StorageManager.getInstance().getStorageUsed('diffusion'));

  const caps: SystemCapabilities = await systemInfo.detect();
  const gpu: GPUInfo = await systemInfo.getGPUInfo();
  const mem: MemoryInfo = systemInfo.getMemoryInfo();
  void caps;
  void ((gpu.vram ?? 0) + mem.total);
  const verdict = await systemInfo.canRunModel(info, { checkTotalMemory: true });
  void verdict.possible;

  diffusionServer.on('crashed', (e: unknown) => void e);
  const started: DiffusionServerInfo = (await diffusionServer.start({ modelId: info.id, port: 'auto' })) as DiffusionServerInfo;
  void started.port;
  const result: ImageGenerationResult = await diffusionServer.generateImage({
    prompt: 'a lighthouse',
    width: 768,
    height: 768,
    steps: 4,
    cfgScale: 1,
    sampler: 'euler',
    onProgress: (step: number, total: number, stage: 'loading' | 'diffusion' | 'decoding', pct?: number) => void [step, total, stage, pct],
  });
  const bytes: Buffer = result.image;
  void bytes;
  // Residency and calibration (genai-electron 0.26).
  diffusionServer.on('backend-status', (e) => void [e.state, e.previous, e.reason, e.exit?.signal]);
  diffusionServer.on('calibration-progress', (p) => void p.overallPercent);
  const backend: DiffusionBackendState = started.backend.state;
  void [backend, diffusionServer.getBackendInfo().pid, diffusionServer.resolveUsageMode(undefined, false)];
  await diffusionServer.releaseBackend({ reason: 'explicit', waitForInFlight: true });
  await diffusionServer.settleResidency('single');
  const batch: ImageGenerationResult[] = await diffusionServer.executeBatchGeneration({ prompt: 'x', count: 2, usageMode: 'burst' });
  void batch;
  await diffusionServer.stop();
  const report: DiffusionCalibrationReport = await diffusionServer.calibrate({
    modelId: info.id,
    sizes: [{ width: 512, height: 512 }],
    generation: { steps: 4, cfgScale: 1, sampler: 'euler' },
    signal: new AbortController().signal,
  });
  void report.recommended['512x512']?.label;

  try {
    await modelManager.getModelInfo('nope');
  } catch (e) {
    if (e instanceof ModelNotFoundError || e instanceof DownloadError || e instanceof ChecksumError) {
      const g: GenaiElectronError = e;
      void g.code;
    }
  }
}
void main;
