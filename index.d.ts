/**
 * genai-electron-rs: public types. Names and shapes follow genai-electron's API so existing code
 * switches by changing its import.
 */

/// <reference types="node" />
import { EventEmitter } from 'node:events';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface ConfigureOptions {
  /** Root of all storage (models/, binaries/, logs/, config/, temp/). */
  userDataPath?: string;
}

/**
 * Sets where storage lives. Resolution order when not configured: GENAI_ELECTRON_USER_DATA, then
 * Electron's `app.getPath('userData')` (main process), then a per-user default directory.
 */
export declare function configure(options?: ConfigureOptions): { userDataPath: string };
/** The resolved userData root (resolving it now if needed). */
export declare function getUserDataPath(): string;

// ---------------------------------------------------------------------------------------------
// Models (contract sections 2-3)

export type ModelType = 'llm' | 'diffusion';

export interface ArtifactProvenance {
  license: string;
  licenseUrl?: string;
  lastCheckedOn?: string;
  note?: string;
}

export interface ModelSource {
  type: 'huggingface' | 'url';
  url: string;
  repo?: string;
  file?: string;
  revision?: string;
}

export interface GGUFMetadata {
  version?: number;
  tensor_count?: number;
  kv_count?: number;
  architecture?: string;
  general_name?: string;
  file_type?: number;
  block_count?: number;
  context_length?: number;
  /** Per-layer arrays (e.g. Gemma 3, gpt-oss) are kept as arrays. */
  attention_head_count?: number | number[];
  attention_head_count_kv?: number | number[];
  attention_key_length?: number | number[];
  attention_sliding_window?: number | number[];
  embedding_length?: number;
  feed_forward_length?: number;
  attention_layer_norm_rms_epsilon?: number;
  vocab_size?: number;
  rope_dimension_count?: number;
  rope_freq_base?: number;
  expert_count?: number;
  expert_used_count?: number;
  expert_feed_forward_length?: number;
  expert_weights_bytes?: number;
  /** Every top-level metadata key of the file. */
  raw?: Record<string, unknown>;
}

export type DiffusionComponentRole =
  | 'diffusion_model'
  | 'clip_l'
  | 'clip_g'
  | 't5xxl'
  | 'llm'
  | 'llm_vision'
  | 'vae';

export interface DiffusionComponentInfo {
  /** Absolute path. */
  path: string;
  /** Bytes. */
  size: number;
  /** `sha256:<hex>` when one was supplied at download. */
  checksum?: string;
  source?: ModelSource;
  provenance?: ArtifactProvenance;
}

export type DiffusionModelComponents = Partial<Record<DiffusionComponentRole, DiffusionComponentInfo>>;

export interface ShardInfo {
  path: string;
  size: number;
  checksum?: string;
}

export interface ModelInfo {
  id: string;
  name: string;
  type: ModelType;
  /** Bytes; the aggregate for multi-component and sharded models. */
  size: number;
  /** Absolute path of the primary file (`components.diffusion_model.path` for multi-component). */
  path: string;
  /** ISO timestamp. */
  downloadedAt: string;
  source: ModelSource;
  provenance?: ArtifactProvenance;
  checksum?: string;
  supportsReasoning?: boolean;
  ggufMetadata?: GGUFMetadata;
  components?: DiffusionModelComponents;
  shards?: ShardInfo[];
  /**
   * Bytes of this model's files that another installed model also uses (a shared blob, or the
   * same path): deleting this model frees `size - sharedSize`. Set on the values `listModels`,
   * `getModelInfo` and `downloadModel` return, computed when read and never stored. Not in
   * genai-electron.
   */
  sharedSize?: number;
  // Fields this library does not know are kept on disk when it rewrites a record, but are not
  // typed: an index signature here would refuse genai-electron's own ModelInfo values.
}

/** The third argument of `onProgress`. */
export interface DownloadProgressInfo {
  /** Smoothed transfer speed of this download (bytes/s; 0 until data flows). */
  bytesPerSecond: number;
  /** Seconds left at the current speed; null while unknown, 0 at the end. */
  etaSeconds: number | null;
  /** Component role of the file being fetched (multi-component models), else null. */
  component: DiffusionComponentRole | null;
  /** On-disk name of the file being fetched. */
  file: string | null;
  /**
   * `preflight` (sizes, disk space), `verifying` (hashing bytes already on disk: a resumed partial
   * or a reused shared file), `downloading`, `done` (the final `(total, total)` call).
   */
  phase: 'preflight' | 'verifying' | 'downloading' | 'done';
  /**
   * One line per file being fetched (files of a model download at the same time), in plan order:
   * its bytes on disk, its size (0 while unknown) and its phase.
   */
  components: DownloadComponentProgress[];
}

export interface DownloadComponentProgress {
  /** Component role (multi-component models), else null. */
  component: DiffusionComponentRole | null;
  file: string;
  downloaded: number;
  total: number;
  phase: 'verifying' | 'downloading' | 'done';
}

/**
 * Aggregate bytes across all files of the download; called at most every 100 ms with values that
 * never decrease, and once with `(total, total)` before the Promise resolves.
 */
export type DownloadProgressCallback = (downloaded: number, total: number, info: DownloadProgressInfo) => void;

export interface DiffusionComponentDownload {
  role: DiffusionComponentRole;
  source: 'huggingface' | 'url';
  url?: string;
  repo?: string;
  file?: string;
  revision?: string;
  checksum?: string;
  provenance?: ArtifactProvenance;
}

export interface DownloadConfig {
  source: 'huggingface' | 'url';
  url?: string;
  repo?: string;
  file?: string;
  revision?: string;
  name: string;
  type: ModelType;
  checksum?: string;
  provenance?: ArtifactProvenance;
  onProgress?: DownloadProgressCallback;
  shardFiles?: string[];
  components?: DiffusionComponentDownload[];
  modelDirectory?: string;
  onComponentStart?: (info: { role: string; filename: string; index: number; total: number }) => void;
  /** Aborts this download (rejects with DownloadError 'Download cancelled'; partial files are kept). */
  signal?: AbortSignal;
  /** Hugging Face token, sent as a Bearer header to the Hugging Face endpoint only. Default: HF_TOKEN. */
  hfToken?: string;
  /** Hugging Face endpoint (a mirror). Default: HF_ENDPOINT, else https://huggingface.co. */
  hfEndpoint?: string;
  /**
   * On failure or cancel, delete `.partial` files and files completed by this attempt (files other
   * models use are kept). Default false: the next call resumes where this one stopped.
   */
  cleanupOnFailure?: boolean;
  /** A response that sends no byte for this long counts as a failed attempt (default 30000). */
  stallTimeoutMs?: number;
  /** Consecutive failed attempts without progress, per file, before giving up (default 5). */
  maxRetries?: number;
  /** First retry delay, doubled per consecutive failure up to 30 s (default 1000). */
  retryDelayMs?: number;
  /**
   * Most ranged connections of this download (1 to 32, default 6), shared by the files fetched at
   * the same time (each gets at least one). A file of at least two parts (16 MiB) is fetched in
   * byte ranges over several connections: a few to start with, more while throughput grows, half
   * as many on 429/5xx. 1 fetches every file in one stream. Servers without Range support always
   * get one stream.
   */
  connections?: number;
  /**
   * A Hugging Face hub cache (`models--org--repo/{blobs,snapshots,refs}`) to take files from
   * instead of downloading them: a file whose sha256 is known (Hugging Face's, or `checksum`) and
   * present as `blobs/<sha256>` there is hash-checked, then hard-linked (copied across volumes).
   * Default: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; false: none.
   */
  huggingFaceCache?: string | false;
  /**
   * Folders (absolute paths, e.g. ComfyUI's `models/`) searched a few levels deep for a file of
   * the same name and size; one whose sha256 matches the expected one is hard-linked (or copied)
   * instead of downloaded. Files without a known sha256 are always downloaded.
   */
  importFrom?: string[];
  /**
   * Test hooks; not for production use. `freeDiskBytes` replaces the measured free space;
   * `partSize` (bytes, default 8 MiB) is the smallest range part.
   */
  testHooks?: { freeDiskBytes?: number; partSize?: number };
}

export type MetadataFetchStrategy = 'local-only' | 'remote-only' | 'local-remote' | 'remote-local';

export declare class ModelManager {
  static getInstance(): ModelManager;
  /** Creates the storage directories (idempotent). */
  initialize(): Promise<void>;
  /** Every readable record; corrupt records are skipped. */
  listModels(type?: ModelType): Promise<ModelInfo[]>;
  /** @throws ModelNotFoundError */
  getModelInfo(id: string): Promise<ModelInfo>;
  /**
   * Deletes the model's files that no other model references, its empty directory and its record.
   * Files with the same content as other models' (shared blobs, hard-linked) keep their bytes
   * until the last model using them is deleted. Never deletes anything outside
   * `<userData>/models/`.
   * @throws ModelNotFoundError, FileSystemError
   */
  deleteModel(id: string): Promise<void>;
  /**
   * Checks that every file exists and re-hashes those with a stored checksum.
   * @returns true when at least one checksum was verified, false when there was none to verify.
   * @throws ModelNotFoundError, FileSystemError (missing file), ChecksumError (mismatch)
   */
  verifyModel(id: string): Promise<boolean>;
  /** Re-reads the GGUF header and stores it as `ggufMetadata`. @throws ModelNotFoundError, DownloadError */
  updateModelMetadata(id: string, options?: { source?: MetadataFetchStrategy; hfToken?: string }): Promise<ModelInfo>;
  /**
   * Downloads a model: one file, a multi-component diffusion model (`components`) or a sharded GGUF.
   * Streams to `<file>.partial` while hashing, resumes after drops/crashes, verifies against
   * `checksum` or Hugging Face's sha256, and writes the record last.
   * @throws DownloadError (validation, HTTP, checksum, cancel, already exists/in progress),
   *   InsufficientResourcesError (disk space), FileSystemError
   */
  downloadModel(config: DownloadConfig): Promise<ModelInfo>;
  /** Cancels every download in progress in this process. */
  cancelDownload(): void;
  /** True while a downloadModel() call of this process has not settled. */
  isDownloading(): boolean;
  getModelLayerCount(id: string): Promise<number>;
  getModelContextLength(id: string): Promise<number>;
  getModelArchitecture(id: string): Promise<string>;
}

export declare const modelManager: ModelManager;

export declare class StorageManager {
  static getInstance(): StorageManager;
  initialize(): Promise<void>;
  resetInitialization(): void;
  getModelPath(type: ModelType, filename: string): string;
  getModelMetadataPath(type: ModelType, id: string): string;
  saveModelMetadata(info: ModelInfo): Promise<void>;
  /** @throws FileSystemError when missing or unreadable */
  loadModelMetadata(type: ModelType, id: string): Promise<ModelInfo>;
  deleteModelFiles(type: ModelType, id: string): Promise<void>;
  listModelFiles(type: ModelType): Promise<string[]>;
  /** Free bytes on the volume that holds the models directory. */
  checkDiskSpace(): Promise<number>;
  verifyModelIntegrity(type: ModelType, id: string): Promise<boolean>;
  /** Bytes used by all records, shared files (one path, or hard links to one blob) counted once. */
  getStorageUsed(type?: ModelType): Promise<number>;
}

/** One tensor of a GGUF file's tensor table (64-bit values as BigInt). */
export interface GGUFTensorInfo {
  name: string;
  n_dims: number;
  shape: bigint[];
  /** ggml type id. */
  dtype: number;
  /** Offset in the tensor data section. */
  offset: bigint;
}

/**
 * A GGUF header as written: every metadata key (`general.architecture`, `llama.block_count`,
 * `tokenizer.ggml.tokens`, ... plus `version`, `tensor_count`, `kv_count`), 64-bit integers as
 * BigInt, and the tensor table. genai-electron 0.26's `fetchGGUFMetadata` result.
 */
export interface ParsedGGUFData {
  metadata: Record<string, unknown>;
  tensorInfos: GGUFTensorInfo[];
}

/** The raw header of a local GGUF file. @throws DownloadError */
export declare function fetchLocalGGUFMetadata(filePath: string): Promise<ParsedGGUFData>;
/**
 * The processed `GGUFMetadata` (named fields and `raw`) of a local GGUF file, as model records
 * hold it in `ggufMetadata`. @throws DownloadError
 */
export declare function fetchLocalGGUFModelMetadata(filePath: string): Promise<GGUFMetadata>;

/** Storage paths under the resolved userData root (read lazily). */
export declare const PATHS: {
  readonly userData: string;
  readonly models: { llm: string; diffusion: string };
  readonly binaries: { llama: string; diffusion: string };
  readonly logs: string;
  readonly config: string;
  readonly temp: string;
  /** `<userData>/loras` (created by `modelManager.initialize()`). */
  readonly loras: string;
};
/** `<userData>/models/<type>/<filename>`. */
export declare function getModelFilePath(type: ModelType, filename: string): string;
/** `<userData>/models/<type>/<modelId>/`. */
export declare function getModelDirectory(type: ModelType, modelId: string): string;

// ---------------------------------------------------------------------------------------------
// System information (contract section 1.3; docs/system-info.md)

export interface MemoryInfo {
  /** Total RAM, bytes. */
  total: number;
  /** RAM a new process can get without swapping (Linux MemAvailable, like `os.freemem()`), bytes. */
  available: number;
  /** `total - available`, bytes. */
  used: number;
  /** Present (true) only when the figures come from a simulated machine file. */
  simulated?: true;
}

export interface CPUInfo {
  /** Logical processors (`os.cpus().length`). */
  cores: number;
  model: string;
  /** Node's name (`x64`, `arm64`, ...). */
  architecture: string;
  /** Present (true) only when the simulated machine file has a `cpu` section. */
  simulated?: true;
}

/** One GPU as the detecting source saw it. */
export interface GPUDeviceInfo {
  /** The source's index (NVML / nvidia-smi order, `cardN` for rocm-smi and sysfs). */
  index: number;
  name: string;
  /** Total VRAM, bytes (absent when the source cannot tell, e.g. Intel). */
  vram?: number;
  /** Free VRAM, bytes. */
  vramAvailable?: number;
}

export type GPUInfoSource =
  | 'nvml'
  | 'nvidia-smi'
  | 'rocm-smi'
  | 'amdgpu-sysfs'
  | 'intel-sysfs'
  | 'apple'
  | 'simulated';

export interface GPUInfo {
  available: boolean;
  type?: 'nvidia' | 'amd' | 'apple' | 'intel';
  /** Name of the device with the most VRAM. */
  name?: string;
  /** Total VRAM of that device, bytes (Apple: floor(0.7 × total RAM)). */
  vram?: number;
  /** Free VRAM of that device, bytes (never set for Apple). */
  vramAvailable?: number;
  cuda?: boolean;
  metal?: boolean;
  rocm?: boolean;
  vulkan?: boolean;
  /** NVIDIA driver version (NVML only), e.g. `550.54.15`. */
  driverVersion?: string;
  /** Highest CUDA version the driver supports (NVML only), e.g. `12.4`. */
  cudaVersion?: string;
  /** Every GPU the source found, in its order. */
  devices?: GPUDeviceInfo[];
  /** Which probe answered. */
  source?: GPUInfoSource;
  /** Present (true) only on a simulated machine. */
  simulated?: true;
}

export interface SystemRecommendations {
  /** Largest LLM class for this machine: `7B`, `13B`, `34B` or `70B`. */
  maxModelSize: string;
  recommendedQuantization: readonly string[];
  /** Inference threads. */
  threads: number;
  /** `0` without a GPU; absent with one. */
  gpuLayers?: number;
  gpuAcceleration: boolean;
}

export interface SystemCapabilities {
  cpu: CPUInfo;
  memory: MemoryInfo;
  gpu: GPUInfo;
  /** `process.platform`. */
  platform: NodeJS.Platform;
  recommendations: SystemRecommendations;
  /** ISO timestamp of the detection. */
  detectedAt: string;
  /** Present (true) only on a simulated machine. */
  simulated?: true;
}

export interface CanRunModelOptions {
  /** Compare with total RAM (servers that load on demand, e.g. diffusion) instead of available RAM. */
  checkTotalMemory?: boolean;
  /** Layers offloaded to the GPU: only the CPU share must fit in RAM. */
  gpuLayers?: number;
  /** Defaults to `ggufMetadata.block_count`, else an estimate from the size. */
  totalLayers?: number;
  /** With `gpuLayers`: check this resolved placement (weights and KV cache on GPU and CPU). */
  contextSize?: number;
  /** KV cache element types of the resolved placement (default f16). */
  cacheTypeK?: KVCacheType;
  cacheTypeV?: KVCacheType;
  /** All MoE expert weights stay in RAM (llama.cpp `--cpu-moe`). */
  cpuMoe?: boolean;
  /** The experts of this many layers stay in RAM (`--n-cpu-moe`). */
  nCpuMoe?: number;
  /** llama.cpp `--override-tensor`; `'exps=CPU'` counts as `cpuMoe`. */
  overrideTensors?: string;
}

export interface CanRunModelResult {
  possible: boolean;
  reason?: string;
  suggestion?: string;
  /** Present (true) when decided on a simulated machine. */
  simulated?: true;
}

export interface TelemetryCommandOptions {
  /** Aborts the call: it rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Deadline for each probe command in ms (default 10000). */
  timeoutMs?: number;
}
export type GPUInfoOptions = TelemetryCommandOptions;
export type MemoryTelemetryRefreshStatus = 'refreshed' | 'not-required' | 'failed';

export declare class SystemInfo {
  static getInstance(): SystemInfo;
  /**
   * CPU, memory, GPU and recommendations. Cached for 60 s; `forceRefresh` measures again.
   * @throws FileSystemError (details.code `SIMULATED_SYSTEM_INVALID`) when
   *   GENAI_ELECTRON_SIMULATE_SYSTEM names an unusable file
   */
  detect(forceRefresh?: boolean): Promise<SystemCapabilities>;
  /** Live RAM reading (uncached). @throws FileSystemError as `detect` */
  getMemoryInfo(): MemoryInfo;
  /** Live GPU reading (uncached); never throws for a missing GPU or tool. @throws FileSystemError as `detect` */
  getGPUInfo(options?: TelemetryCommandOptions): Promise<GPUInfo>;
  /**
   * Whether the model fits, by genai-electron 0.26's rules: `(size − MoE experts) × 1.2` plus a
   * 4096-token KV cache (GGUF records) against total or available RAM (CPU share only with
   * `gpuLayers`); expert weights over 60 % of total RAM are refused; with `contextSize` and
   * `gpuLayers` the resolved placement is checked against free VRAM and RAM. Over 8 GiB without
   * GPU is possible with an advisory `reason`.
   * @throws TypeError for a record without a numeric `size` or an unknown cache type
   */
  canRunModel(modelInfo: Pick<ModelInfo, 'size'> & Partial<ModelInfo>, options?: CanRunModelOptions): Promise<CanRunModelResult>;
  /**
   * genai-electron refreshes Windows' available-memory figure here; this library reads available
   * memory from the OS on every call, so this always resolves `'not-required'`.
   */
  refreshMemoryTelemetry(options?: TelemetryCommandOptions): Promise<MemoryTelemetryRefreshStatus>;
  /** Forgets the cached `detect()` result. */
  clearCache(): void;
}

export declare const systemInfo: SystemInfo;

// ---------------------------------------------------------------------------------------------
// Diffusion server (contract section 4; docs/diffusion-server.md)

export type ServerStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed';
export type HealthStatus = 'ok' | 'loading' | 'error' | 'unknown';

export type ImageSampler =
  | 'euler_a'
  | 'euler'
  | 'heun'
  | 'dpm2'
  | 'dpm++2s_a'
  | 'dpm++2m'
  | 'dpm++2mv2'
  | 'lcm'
  | 'er_sde'
  | 'euler_cfg_pp'
  | 'euler_a_cfg_pp'
  | 'ipndm'
  | 'ipndm_v'
  | 'ddim_trailing'
  | 'tcd'
  | 'res_multistep'
  | 'res_2s'
  | 'euler_ge'
  | 'dpm++2m_sde'
  | 'dpm++2m_sde_bt'
  | 'lms';

export type ImageGenerationStage = 'loading' | 'diffusion' | 'decoding';

export interface DiffusionServerConfig {
  /** A `diffusion` model id from modelManager. */
  modelId: string;
  /** Port of the HTTP API (default 8081); 'auto' or 0 picks a free one. */
  port?: number | 'auto';
  /** Address the HTTP API binds (default '127.0.0.1'; '' means the same). Anything else exposes it to the network. */
  host?: string;
  /**
   * CORS allow-list for browser clients (default none: no CORS headers). Exact origins, or '*'.
   * A cross-origin POST/DELETE from any other origin gets 403 INVALID_ORIGIN.
   */
  allowedOrigins?: string[];
  /** Deadline for each sd-server spawn to load the model and answer (default 120000 ms). Alias: startTimeoutMs. */
  startupTimeout?: number;
  /** After an image: 'burst' keeps sd-server warm, 'single' releases it. 'auto'/unset: 'burst' (no LLM to make room for). */
  usageMode?: DiffusionUsageMode | 'auto';
  /** A warm sd-server is released after this long without a job (default 300000 ms; <= 0 or non-finite: never). */
  idleTimeoutMs?: number;
  /**
   * A job with no activity from sd.cpp (output, status change) for this long fails with ServerError
   * details.code 'BACKEND_JOB_STUCK' and sd-server is released (reason 'stuck'). Default 600000 ms;
   * <= 0 turns the watchdog off. Alias: jobStallTimeoutMs.
   */
  jobActivityTimeoutMs?: number;
  /** `-t`: CPU threads for sd.cpp (default or 0: its own, the physical core count). */
  threads?: number;
  /** Accepted for compatibility; sd.cpp has no such option. */
  gpuLayers?: number;
  /** Accepted for compatibility; this library does not provision or validate binaries. */
  forceValidation?: boolean;
  /** `--clip-on-cpu`; undefined = auto from VRAM. */
  clipOnCpu?: boolean;
  /** `--vae-on-cpu`; undefined = auto from VRAM. */
  vaeOnCpu?: boolean;
  /** `--offload-to-cpu`; undefined = auto (footprint > 85 % of VRAM). */
  offloadToCpu?: boolean;
  /** `--diffusion-fa`; undefined = auto (on when the model has an `llm` component). */
  diffusionFlashAttention?: boolean;
  /** batch_count of each one-image job (max(1, floor(batchSize))), as genai-electron sends it; the first image is the result. */
  batchSize?: number;
  /** 'server' (default): one sd-server keeps the model loaded. 'cli': one sd-cli per request. */
  backend?: 'server' | 'cli';
  /** The sd-server / sd-cli program, or its folder. Else GENAI_ELECTRON_SD_BINARY_DIR, else <userData>/binaries/diffusion/. */
  binaryPath?: string;
  /** Requests that may wait behind the running one (default 16); more get 503 / SERVER_BUSY. */
  maxQueueSize?: number;
  /** Older name of startupTimeout. */
  startTimeoutMs?: number;
  /** Older name of jobActivityTimeoutMs. */
  jobStallTimeoutMs?: number;
  /** Spawn sd-server during start() (failing start on a model that cannot load) instead of on the first image. Default false. */
  preload?: boolean;
}

/** What happens to sd-server after an image. */
export type DiffusionUsageMode = 'burst' | 'single';
export type DiffusionBackendState = 'absent' | 'starting' | 'ready' | 'busy' | 'stopping';
export type DiffusionBackendReleaseReason =
  | 'single'
  | 'idle-timeout'
  | 'explicit'
  | 'flags-changed'
  | 'cancel'
  | 'stuck'
  | 'crashed'
  | 'stop'
  | 'shutdown'
  | 'llm-start'
  | 'calibration';

export interface DiffusionOptimizationFlags {
  clipOnCpu: boolean;
  vaeOnCpu: boolean;
  offloadToCpu: boolean;
  diffusionFlashAttention: boolean;
}

/** sd-server's residency: `getBackendInfo()`, `getInfo().backend`. */
export interface DiffusionBackendInfo {
  state: DiffusionBackendState;
  pid?: number;
  /** ISO time of the spawn. */
  startedAt?: string;
  /** Spawn to ready. */
  loadTimeMs?: number;
  /** ISO time the last job ended. */
  lastUsedAt?: string;
  flags?: DiffusionOptimizationFlags;
}

export interface DiffusionBackendStatusEvent {
  state: DiffusionBackendState;
  previous: DiffusionBackendState;
  reason?: DiffusionBackendReleaseReason | 'spawned' | 'ready' | 'job' | 'start-failed';
  /** On reason 'crashed'. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

export interface DiffusionOffloadCombo {
  label?: string;
  clipOnCpu?: boolean;
  vaeOnCpu?: boolean;
  offloadToCpu?: boolean;
  diffusionFlashAttention?: boolean;
}

export interface CalibrationSize {
  width: number;
  height: number;
}

export interface DiffusionCalibrationGeneration {
  steps: number;
  cfgScale: number;
  sampler: ImageSampler;
  threads?: number;
  batchSize?: number;
}

export interface DiffusionCalibrationProgress {
  phase: 'preparing' | 'warmup' | 'sampling' | 'restoring-llm' | 'done';
  comboIndex: number;
  comboCount: number;
  combo?: DiffusionOffloadCombo;
  sizeIndex: number;
  sizeCount: number;
  size?: CalibrationSize;
  sample?: number;
  sampleCount?: number;
  generationPercent?: number;
  overallPercent: number;
}

export interface DiffusionCalibrationConfig {
  modelId: string;
  /** Positive multiples of 64. */
  sizes: CalibrationSize[];
  generation: DiffusionCalibrationGeneration;
  /** Default 'single' (cold runs). */
  usageMode?: DiffusionUsageMode;
  combos?: DiffusionOffloadCombo[];
  samples?: number;
  seed?: number;
  prompt?: string;
  onProgress?: (progress: DiffusionCalibrationProgress) => void;
  signal?: AbortSignal;
}

export interface CalibrationRun {
  size: CalibrationSize;
  combo: DiffusionOffloadCombo;
  resolved?: DiffusionOptimizationFlags;
  status: 'ok' | 'oom' | 'error';
  /** Median of samplesMs. */
  timeTakenMs?: number;
  stageMs?: { loadMs?: number; diffusionMs?: number; decodeMs?: number };
  vramPeakBytes?: number;
  vramIdleBytes?: number;
  samplesMs?: number[];
  error?: string;
}

export interface DiffusionCalibrationReport {
  machine: { gpuType?: string; gpuName?: string; vramBytes?: number; vramAvailableBytes?: number };
  modelId: string;
  steps: number;
  cfgScale: number;
  sampler: ImageSampler;
  samples: number;
  usageMode: DiffusionUsageMode;
  policyVersion: 'diffusion-offload-v2';
  runs: CalibrationRun[];
  /** Per 'WxH': the combo with the fewest forced flags within 5 % of the fastest. */
  recommended: Record<string, DiffusionOffloadCombo>;
  skippedCombos?: { combo: DiffusionOffloadCombo; reason: string }[];
}

/** The object genai-electron's DiffusionServerManager takes as its third argument's orchestrator. */
export interface DiffusionOrchestrator {
  orchestrateImageGeneration(config: ImageGenerationConfig): Promise<ImageGenerationResult>;
  onDiffusionBackendReleased?(reason: DiffusionBackendReleaseReason): void;
  waitForReload?(): Promise<void>;
  offloadLLM?(): Promise<unknown>;
  reloadLLM?(): Promise<unknown>;
}

export type ServerEvent =
  | 'ready'
  | 'started'
  | 'stopped'
  | 'crashed'
  | 'restarted'
  | 'health-check-ok'
  | 'health-check-failed'
  | 'binary-log'
  | 'binary-progress'
  | 'backend-status'
  | 'calibration-progress';

export interface DiffusionServerInfo {
  status: ServerStatus;
  health: HealthStatus;
  /** sd-server's pid; undefined while it is absent (it is spawned on the first image). */
  pid?: number;
  port: number;
  modelId: string;
  startedAt?: string;
  error?: string;
  /** A generation is running or queued. */
  busy?: boolean;
  /** sd-server's residency (genai-electron 0.26). */
  backend: DiffusionBackendInfo;
  /** The config's `backend` choice: 'server' (sd-server) or 'cli' (one sd-cli per image). */
  backendKind?: 'server' | 'cli';
  /** The optimisation flags decided at start (config values, else auto); a running sd-server's are in backend.flags. */
  flags?: DiffusionOptimizationFlags;
}

export type ServerInfo = DiffusionServerInfo;

export interface ImageGenerationConfig {
  prompt: string;
  negativePrompt?: string;
  /** 64-4096; sd.cpp rounds up to what the model needs. Default: sd.cpp's (512). */
  width?: number;
  height?: number;
  steps?: number;
  cfgScale?: number;
  /** Undefined or negative: random. Images of a batch use seed, seed+1, ... */
  seed?: number;
  sampler?: ImageSampler;
  /** 1-5 images in one request. generateImage() resolves with the first and all of them in `images`. */
  count?: number;
  /** This image's residency; overrides the server's usageMode. */
  usageMode?: DiffusionUsageMode;
  onProgress?: (currentStep: number, totalSteps: number, stage: ImageGenerationStage, percentage?: number) => void;
}

export interface ImageGenerationResult {
  /** PNG bytes. */
  image: Buffer;
  format: 'png';
  /** Milliseconds from the start of processing. */
  timeTaken: number;
  seed: number;
  /** Read from the PNG. */
  width: number;
  height: number;
  /** Every image when `count` > 1. */
  images?: ImageGenerationResult[];
}

export interface ImageGenerationProgress {
  currentStep: number;
  totalSteps: number;
  stage: ImageGenerationStage;
  percentage?: number;
  currentImage?: number;
  totalImages?: number;
}

export type GenerationStatus = 'pending' | 'in_progress' | 'complete' | 'error' | 'cancelled';

/** GET /v1/images/generations/:id */
export interface GenerationState {
  id: string;
  status: GenerationStatus;
  createdAt: number;
  updatedAt: number;
  progress?: ImageGenerationProgress;
  result?: { images: { image: string; seed: number; width: number; height: number }[]; format: 'png'; timeTaken: number };
  error?: { message: string; code: string };
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export interface LogEntry {
  timestamp: string;
  level: LogLevel;
  message: string;
}

export interface BinaryLogEvent {
  message: string;
  level: 'info' | 'warn' | 'error';
}

/** `'crashed'`: sd-server died on its own. The server keeps running (backend-status 'crashed'). */
export interface DiffusionCrashEvent {
  /** The process's exit code; null when a signal ended it. */
  code: number | null;
  /** The signal's name, e.g. 'SIGKILL'; null when it exited. */
  signal: NodeJS.Signals | null;
  /** The exit code, or 128 + signal number. */
  exitCode?: number;
  /** Last lines sd-server wrote to stderr. */
  stderr: string;
  message: string;
}

export declare class DiffusionServerManager extends EventEmitter {
  /**
   * genai-electron's arguments. Only what is used is required of them: `modelManager.getModelInfo`
   * and `systemInfo.getGPUInfo` (calibration); `llamaServer` is kept for an orchestrator.
   */
  constructor(
    modelManager?: { getModelInfo(id: string): Promise<{ id: string; name: string; type: string }> },
    systemInfo?: { getGPUInfo(): Promise<{ type?: string; name?: string; vram?: number; vramAvailable?: number }> },
    llamaServer?: unknown,
  );
  /** @throws ServerError, ModelNotFoundError, FileSystemError, BinaryError, PortInUseError, InsufficientResourcesError */
  start(config: DiffusionServerConfig): Promise<DiffusionServerInfo>;
  /** Cancels queued and running generations, ends every child process, closes the HTTP API. */
  stop(): Promise<void>;
  restart(): Promise<DiffusionServerInfo>;
  /**
   * Queued behind earlier requests; spawns sd-server if absent and settles residency (usageMode)
   * before resolving. With an orchestrator, delegates to its orchestrateImageGeneration.
   * Cancelled: rejects with Error('Image generation cancelled').
   */
  generateImage(config: ImageGenerationConfig): Promise<ImageGenerationResult>;
  /** One image, no residency settling; `flagOverrides` force flags (a change respawns sd-server, reason 'flags-changed'). */
  executeImageGeneration(config: ImageGenerationConfig, flagOverrides?: DiffusionOffloadCombo): Promise<ImageGenerationResult>;
  /** `count` images as separate jobs, seeds seed+i; progress spans the batch. */
  executeBatchGeneration(config: ImageGenerationConfig): Promise<ImageGenerationResult[]>;
  /** Ends sd-server (default reason 'explicit'); the server keeps running and respawns it on demand. */
  releaseBackend(options?: { reason?: DiffusionBackendReleaseReason; waitForInFlight?: boolean }): Promise<void>;
  getBackendInfo(): DiffusionBackendInfo;
  settleResidency(mode: DiffusionUsageMode): Promise<void>;
  resolveUsageMode(requestMode: DiffusionUsageMode | undefined, llmWasOffloaded: boolean): DiffusionUsageMode;
  getOrchestrator(): DiffusionOrchestrator | undefined;
  /** Sets the orchestrator generateImage() delegates to and that hears backend releases. */
  setOrchestrator(orchestrator: DiffusionOrchestrator | undefined): void;
  /** Server must be stopped. @throws ServerError (details.code CALIBRATION_ABORTED with partial runs) on abort. */
  calibrate(config: DiffusionCalibrationConfig): Promise<DiffusionCalibrationReport>;
  isCalibrating(): boolean;
  /** @throws ServerError (details.code GENERATION_NOT_FOUND) for an unknown id; no-op when finished. */
  cancelImageGeneration(id: string): Promise<void>;
  getActiveGenerationId(): string | undefined;
  getInfo(): DiffusionServerInfo;
  getStatus(): ServerStatus;
  isHealthy(): Promise<boolean>;
  getPort(): number;
  getPid(): number | undefined;
  getConfig(): DiffusionServerConfig | undefined;
  isRunning(): boolean;
  isStopped(): boolean;
  isStarting(): boolean;
  isStopping(): boolean;
  hasCrashed(): boolean;
  getLogs(lines?: number): Promise<string[]>;
  getStructuredLogs(lines?: number): Promise<LogEntry[]>;
  clearLogs(): Promise<void>;
  getLogPath(): string | undefined;

  on(event: 'status', listener: (status: ServerStatus, previous: ServerStatus) => void): this;
  on(event: 'started' | 'restarted', listener: (info: DiffusionServerInfo) => void): this;
  on(event: 'stopped', listener: () => void): this;
  on(event: 'crashed', listener: (event: DiffusionCrashEvent) => void): this;
  on(event: 'binary-log', listener: (event: BinaryLogEvent) => void): this;
  on(event: 'binary-progress', listener: (event: BinaryProgressEvent) => void): this;
  on(event: 'backend-status', listener: (event: DiffusionBackendStatusEvent) => void): this;
  on(event: 'calibration-progress', listener: (progress: DiffusionCalibrationProgress) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export declare const diffusionServer: DiffusionServerManager;

// ---------------------------------------------------------------------------------------------
// Constants

export declare const DEFAULT_PORTS: Readonly<{ llama: 8080; diffusion: 8081 }>;
export declare const DIFFUSION_COMPONENT_FLAGS: Readonly<Record<DiffusionComponentRole, string>>;
export declare const DIFFUSION_COMPONENT_ORDER: readonly DiffusionComponentRole[];
export declare const DEFAULT_TIMEOUTS: {
  readonly download: 300000;
  readonly serverStart: 120000;
  readonly serverStop: 10000;
  readonly healthCheck: 5000;
};
export declare const DIFFUSION_VRAM_THRESHOLDS: {
  readonly clipOnCpuHeadroomBytes: number;
  readonly vaeOnCpuHeadroomBytes: number;
  readonly modelOverheadMultiplier: 1.2;
};
export declare const DIFFUSION_BACKEND_DEFAULTS: {
  readonly idleTimeoutMs: 300000;
  readonly jobPollIntervalMs: 200;
  readonly jobRequestTimeoutMs: 10000;
  readonly readyTimeoutMs: 120000;
  readonly stopTimeoutMs: 10000;
  readonly maxTransientPollFailures: 3;
  readonly jobActivityTimeoutMs: 600000;
};
export declare const DIFFUSION_CALIBRATION_DEFAULTS: {
  readonly combos: readonly {
    readonly label?: string;
    readonly clipOnCpu?: boolean;
    readonly vaeOnCpu?: boolean;
    readonly offloadToCpu?: boolean;
    readonly diffusionFlashAttention?: boolean;
  }[];
  readonly samples: number;
  readonly seed: number;
  readonly prompt: string;
  readonly tieTolerancePct: number;
  readonly sd35LargePattern: RegExp;
  readonly oomPatterns: readonly RegExp[];
  readonly policyVersion: 'diffusion-offload-v2';
  readonly usageMode: 'single';
};
/** llama.cpp KV cache element types. */
export type KVCacheType = 'f16' | 'bf16' | 'q8_0' | 'q5_0' | 'q5_1' | 'q4_0' | 'q4_1' | 'iq4_nl';
/** Bytes per KV cache element of each type. */
export declare const KV_CACHE_BYTES_PER_ELEMENT: Readonly<Record<KVCacheType, number>>;
/** `[upper bound, step]` pairs `floorContextToGranularity` rounds context sizes with. */
export declare const CONTEXT_GRANULARITY_LADDER: readonly (readonly [number, number])[];
/** Lower-case file-name substrings of reasoning models. */
export declare const REASONING_MODEL_PATTERNS: readonly string[];

// ---------------------------------------------------------------------------------------------
// Errors (contract section 5)

export declare class GenaiElectronError extends Error {
  constructor(message: string, code: string, details?: unknown);
  readonly code: string;
  /** Always an own property; undefined when the error has no details. */
  readonly details?: unknown;
}
export type ContextConstraintStage = 'validation' | 'sizing' | 'runtime';
export type ContextConstraintReason =
  | 'invalid-minimum'
  | 'invalid-preferred'
  | 'invalid-maximum'
  | 'exact-range-conflict'
  | 'minimum-exceeds-preferred'
  | 'preferred-exceeds-maximum'
  | 'minimum-exceeds-maximum'
  | 'unsafe-total-capacity'
  | 'minimum-exceeds-native'
  | 'model-context-unknown'
  | 'fit-range-conflict'
  | 'precomputed-context-out-of-range'
  | 'runtime-capacity-unavailable'
  | 'runtime-slots-mismatch'
  | 'runtime-below-minimum'
  | 'runtime-above-maximum';
export interface ContextConstraintDetails {
  reason: ContextConstraintReason;
  stage: ContextConstraintStage;
  contextSize?: number;
  minimumContextSize?: number;
  preferredContextSize?: number;
  maximumContextSize?: number;
  configuredContextSize?: number;
  effectiveContextSize?: number;
  nativeContextSize?: number;
  parallelRequests?: number;
  effectiveParallelRequests?: number;
  suggestion?: string;
  cause?: string;
}
/** An LLM context policy that cannot be met. Code `CONTEXT_CONSTRAINT_ERROR`. */
export declare class ContextConstraintError extends GenaiElectronError {
  constructor(message: string, details: ContextConstraintDetails);
  readonly details: ContextConstraintDetails;
}
export declare class ModelNotFoundError extends GenaiElectronError {
  constructor(modelId: string);
}
export declare class DownloadError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
}
export interface InsufficientResourcesDetails {
  required: string;
  available: string;
  suggestion?: string;
  minimumContextSize?: number;
  preferredContextSize?: number;
  maximumContextSize?: number;
  configuredContextSize?: number;
  maxFeasibleContextSize?: number;
  parallelRequests?: number;
}
export declare class InsufficientResourcesError extends GenaiElectronError {
  constructor(
    message: string,
    details?: InsufficientResourcesDetails | { required?: unknown; available?: unknown; suggestion?: string; [k: string]: unknown },
  );
  /**
   * `required`/`available` are texts for a model that does not fit in memory, byte counts for a
   * download that does not fit on disk, and absent when the disk filled up during a transfer.
   */
  readonly details: {
    required?: string | number;
    available?: string | number;
    suggestion?: string;
    [k: string]: unknown;
  };
}
export declare class ServerError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
}
export type LlamaCalibrationResourceStabilityCode = 'CALIBRATION_RESOURCE_DRIFT' | 'CALIBRATION_RESOURCE_STABILITY_UNVERIFIED';
export interface LlamaCalibrationResourceStabilityDetailsCommon {
  /** The calibration report up to the failure (its type lands with LLM calibration). */
  partialReport: unknown;
  suggestion: string;
}
export type LlamaCalibrationResourceStabilityDetails = LlamaCalibrationResourceStabilityDetailsCommon &
  ({ code: 'CALIBRATION_RESOURCE_DRIFT' } | { code: 'CALIBRATION_RESOURCE_STABILITY_UNVERIFIED' });
/** LLM calibration stopped because free RAM/VRAM moved. Code `SERVER_ERROR`; `details.code` says why. */
export declare class LlamaCalibrationResourceStabilityError extends ServerError {
  constructor(message: string, details: LlamaCalibrationResourceStabilityDetails);
  readonly details: LlamaCalibrationResourceStabilityDetails;
}
export declare class PortInUseError extends GenaiElectronError {
  constructor(port: number);
}
export declare class FileSystemError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
}
export declare class ChecksumError extends GenaiElectronError {
  constructor(message: string, details?: { expected?: string; actual?: string; [k: string]: unknown });
}
export declare class BinaryError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
}

// ---------------------------------------------------------------------------------------------
// genai-electron 0.26 root helpers (docs/migration.md)

/** `formatErrorForUI` result: what to show a user for an error. */
export interface UIErrorFormat {
  code: string;
  title: string;
  message: string;
  remediation?: string;
}
/** A title, message and remediation for any thrown value (genai-electron 0.26's texts). */
export declare function formatErrorForUI(error: unknown): UIErrorFormat;

/** What `attachAppLifecycle` needs of an Electron `app`. */
export interface LifecycleApp {
  on(event: 'before-quit', listener: (event: { preventDefault(): void }) => void): unknown;
  exit(exitCode?: number): void;
}
/** What `attachAppLifecycle` needs of a server manager. */
export interface LifecycleServer {
  getStatus(): string;
  stop(): Promise<void>;
  /** Called with `{ reason: 'shutdown' }` before `stop()` where the manager has it. */
  releaseBackend?(options: { reason: 'shutdown' }): Promise<unknown>;
}
export interface ServerManagers {
  llamaServer?: LifecycleServer;
  diffusionServer?: LifecycleServer;
}
/**
 * On Electron's `before-quit`: holds the quit, stops the LLM server if running, releases the
 * diffusion backend, stops the diffusion server if running, then `app.exit(0)`.
 */
export declare function attachAppLifecycle(app: LifecycleApp, managers: ServerManagers): void;

/** `<userData>/binaries/<type>/<binaryName>` (`.exe` appended on Windows). */
export declare function getBinaryPath(type: 'llama' | 'diffusion', binaryName: string): string;

export interface HealthCheckResponse {
  status: HealthStatus;
  [key: string]: unknown;
}
/** `GET /health` within `timeout` ms (default 5000); `{ status: 'unknown' }` when nothing answers. */
export declare function checkHealth(port: number, timeout?: number, host?: string, signal?: AbortSignal): Promise<HealthCheckResponse>;
/** Polls `/health` with backoff until `ok`. @throws ServerError after `timeout` ms (default 120000) */
export declare function waitForHealthy(
  port: number,
  timeout?: number,
  initialDelay?: number,
  maxDelay?: number,
  host?: string,
  signal?: AbortSignal,
): Promise<void>;
export declare function isServerResponding(port: number, timeout?: number, host?: string): Promise<boolean>;
/** `'::'` -> `'::1'`; `''`, `'0.0.0.0'` or none -> `'127.0.0.1'`. */
export declare function normalizeHealthHost(host?: string): string;
export declare function findFreePort(host?: string): Promise<number>;
export declare function isPortBindable(port: number, host?: string): Promise<boolean>;

export declare function getCPUInfo(): CPUInfo;
/** Threads for llama.cpp on `cpuCores` cores (default: this machine's). */
export declare function getRecommendedThreads(cpuCores?: number): number;
export declare function getMemoryInfo(): MemoryInfo;
export declare function detectGPU(options?: TelemetryCommandOptions): Promise<GPUInfo>;
/** Total VRAM in bytes (Apple: 70 % of RAM), or null when unknown. */
export declare function estimateVRAM(gpu: GPUInfo, options?: TelemetryCommandOptions): Promise<number | null>;
/** KV cache bytes per token for the model (genai-electron's metadata fallbacks). @throws TypeError for an unknown cache type */
export declare function estimateKVBytesPerToken(modelInfo: ModelInfo, cacheTypeK?: KVCacheType, cacheTypeV?: KVCacheType): number;
export declare function floorContextToGranularity(tokens: number): number;

export declare function getHuggingFaceURL(repo: string, file: string, revision?: string): string;
export declare function parseHuggingFaceURL(url: string): { repo: string; revision: string; file: string } | null;
/** Lower-case hex SHA-256 of a file (hashed natively, streamed). @throws FileSystemError */
export declare function calculateSHA256(filePath: string): Promise<string>;
/** Whether the file's SHA-256 equals `expectedChecksum` (hex, `sha256:` prefix allowed). @throws FileSystemError */
export declare function verifyChecksum(filePath: string, expectedChecksum: string): Promise<boolean>;
/** `gen_<ms>_<random>`. */
export declare function generateId(): string;
/** The raw header of a remote GGUF file, read with HTTP Range requests. @throws DownloadError */
export declare function fetchGGUFMetadata(url: string): Promise<ParsedGGUFData>;
/** `metadata['<general.architecture>.<fieldPath>']`. */
export declare function getArchField(metadata: Record<string, unknown>, fieldPath: string): unknown;
export declare function detectReasoningSupport(filename: string): boolean;

export type PlatformKey = 'darwin-arm64' | 'darwin-x64' | 'win32-x64' | 'linux-x64';
export declare function getPlatform(): NodeJS.Platform;
export declare function getArchitecture(): string;
/** @throws Error on a platform genai-electron ships no binaries for */
export declare function getPlatformKey(): PlatformKey;
export declare function isMac(): boolean;
export declare function isWindows(): boolean;
export declare function isLinux(): boolean;
export declare function isAppleSilicon(): boolean;

/** File helpers; I/O runs natively off the JS thread. Each failure is a FileSystemError. */
export declare function ensureDirectory(dirPath: string): Promise<void>;
export declare function fileExists(filePath: string): Promise<boolean>;
export declare function getFileSize(filePath: string): Promise<number>;
export declare function deleteFile(filePath: string): Promise<void>;
export declare function moveFile(fromPath: string, toPath: string): Promise<void>;
export declare function calculateChecksum(filePath: string): Promise<string>;
/** `1536` -> `'1.5 KB'`. */
export declare function formatBytes(bytes: number, decimals?: number): string;
export declare function sanitizeFilename(filename: string): string;

/** Declared by genai-electron 0.26 and used by none of its APIs. */
export interface DownloadProgress {
  downloaded: number;
  total: number;
  percentage: number;
  speed: number;
  estimatedTimeRemaining?: number;
}

export type Optional<T> = { [K in keyof T]?: T[K] };
export type RequiredKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? never : K }[keyof T];
export type OptionalKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? K : never }[keyof T];
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

// ---- LLM server (llama.cpp), getOptimalConfig and the resource orchestrator ----

export type FlashAttentionSetting = boolean | 'on' | 'off' | 'auto';

/** genai-electron 0.26's fields shared by its server configs. */
export interface ServerConfig {
  modelId: string;
  port?: number | 'auto';
  threads?: number;
  contextSize?: number;
  minimumContextSize?: number;
  preferredContextSize?: number;
  maximumContextSize?: number;
  gpuLayers?: number;
  parallelRequests?: number;
  flashAttention?: FlashAttentionSetting;
  host?: string;
  forceValidation?: boolean;
  startupTimeout?: number;
}

/** genai-electron 0.26's `LlamaServerConfig`; each field becomes the llama-server flag 0.26 passes. */
export interface LlamaServerConfig extends ServerConfig {
  /** Default 8080; `'auto'` picks a free loopback port. */
  port?: number | 'auto';
  /** Total context (`-c`); unset: sized by `systemInfo.getOptimalConfig`. */
  contextSize?: number;
  /** Per-slot context policy (0.26): sized by `getOptimalConfig` when `contextSize` is unset. */
  minimumContextSize?: number;
  /** Re-run the installed llama.cpp build's validation (`--version`, then a short completion on this model). */
  forceValidation?: boolean;
  /** Milliseconds to wait for `/health` 200 (default 120000). */
  startupTimeout?: number;
  modelAlias?: string;
  continuousBatching?: boolean;
  batchSize?: number;
  useMmap?: boolean;
  useMlock?: boolean;
  jinja?: boolean;
  cacheTypeK?: KVCacheType;
  cacheTypeV?: KVCacheType;
  swaFull?: boolean;
  overrideTensors?: string;
  cacheRam?: number;
  cpuMoe?: boolean;
  nCpuMoe?: number;
  reasoningFormat?: 'auto' | 'deepseek' | 'deepseek-legacy' | 'none';
  /** Default `'off'`: this library sizes context and layers; `'on'` leaves both to llama-server. */
  fit?: 'on' | 'off';
  occupancyCheck?: 'warn' | 'strict' | 'off';
  autoRestart?: boolean;
  maxRestarts?: number;
  healthCheckInterval?: number;
  /** llama-server or its folder; else `GENAI_ELECTRON_LLAMA_BINARY_DIR`, else `<userData>/binaries/llama/`. */
  binaryPath?: string;
}

export type OptimalConfigHints = Partial<Pick<LlamaServerConfig, 'contextSize' | 'minimumContextSize' | 'preferredContextSize' | 'maximumContextSize' | 'gpuLayers' | 'parallelRequests' | 'flashAttention' | 'cacheTypeK' | 'cacheTypeV' | 'cpuMoe' | 'nCpuMoe' | 'overrideTensors'>>;

export interface LlamaServerInfo {
  status: ServerStatus;
  health: HealthStatus;
  pid?: number;
  port: number;
  modelId: string;
  startedAt?: string;
  error?: string;
  loadTimeMs?: number;
  configuredContextSize?: number;
  /** `/props` `n_ctx`: per slot. */
  effectiveContextSize?: number;
  serverGeneration?: number;
  effectiveParallelRequests?: number;
}

export interface LlamaServerReadyState {
  serverGeneration: number;
  modelId: string;
  port: number;
  configuredContextSize?: number;
  effectiveContextSize: number;
  effectiveParallelRequests: number;
  startedAt: string;
}

export type LlamaPreStartHook = (ctx: { config: LlamaServerConfig; reason: 'start' | 'auto-restart' }) => Promise<void> | void;

export interface LlamaCrashInfo {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  /** `'SIGSEGV'`, `'SIGKILL'`, ...; null for an exit code. */
  signal: string | null;
  /** The last stderr lines of llama-server. */
  stderr: string;
  message: string;
}

export declare class LlamaServerManager extends EventEmitter {
  constructor(modelManager?: ModelManager, systemInfo?: SystemInfo);
  start(config: LlamaServerConfig): Promise<LlamaServerInfo>;
  stop(): Promise<void>;
  restart(): Promise<LlamaServerInfo>;
  getStatus(): ServerStatus;
  getInfo(): LlamaServerInfo;
  getPort(): number;
  getPid(): number | undefined;
  getConfig(): LlamaServerConfig | undefined;
  isRunning(): boolean;
  isStopped(): boolean;
  isStarting(): boolean;
  isStopping(): boolean;
  hasCrashed(): boolean;
  isHealthy(): Promise<boolean>;
  getHealthStatus(): Promise<HealthStatus>;
  getLogs(lines?: number): Promise<string[]>;
  getStructuredLogs(lines?: number): Promise<LogEntry[]>;
  clearLogs(): Promise<void>;
  getLogPath(): string | undefined;
  registerPreStartHook(hook: LlamaPreStartHook): () => void;
  /** Always false: LLM calibration is not provided. */
  isCalibrating(): boolean;
  /** Not provided: rejects with a ServerError (`details.code: 'NOT_SUPPORTED'`). */
  calibrate(config?: unknown): Promise<unknown>;
  on(event: 'status', listener: (status: ServerStatus, previous: ServerStatus) => void): this;
  on(event: 'ready', listener: (state: LlamaServerReadyState) => void): this;
  on(event: 'started' | 'restarted' | 'health-check-ok', listener: (info: LlamaServerInfo) => void): this;
  on(event: 'stopped', listener: () => void): this;
  on(event: 'crashed', listener: (crash: LlamaCrashInfo) => void): this;
  on(event: 'health-check-failed', listener: (e: { consecutiveFailures: number; serverInfo: LlamaServerInfo }) => void): this;
  on(event: 'binary-log', listener: (event: BinaryLogEvent) => void): this;
  on(event: 'binary-progress', listener: (event: BinaryProgressEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export declare const llamaServer: LlamaServerManager;

export interface SystemInfo {
  /** genai-electron 0.26's llama-server sizing for `modelInfo` on this machine. */
  getOptimalConfig(modelInfo: Pick<ModelInfo, 'size'> & Partial<ModelInfo>, hints?: OptimalConfigHints): Promise<Partial<LlamaServerConfig>>;
}

export interface SavedLLMState {
  config: LlamaServerConfig;
  wasRunning: boolean;
  savedAt: Date;
}

/** What the orchestrator calls on the diffusion side (0.26's DiffusionServerManager and ours have it). */
export interface OrchestratedDiffusionServer {
  getConfig(): { modelId: string; usageMode?: DiffusionUsageMode | 'auto' } | undefined;
  executeImageGeneration(config: ImageGenerationConfig): Promise<unknown>;
  executeBatchGeneration(config: ImageGenerationConfig): Promise<unknown>;
  resolveUsageMode(requestMode: DiffusionUsageMode | 'auto' | undefined, llmWasOffloaded: boolean): DiffusionUsageMode;
  settleResidency(mode: DiffusionUsageMode): Promise<void>;
  releaseBackend(options?: { reason?: DiffusionBackendReleaseReason; waitForInFlight?: boolean }): Promise<unknown>;
  getBackendInfo(): { state: string };
  isCalibrating(): boolean;
}

export declare class ResourceOrchestrator {
  constructor(systemInfo: SystemInfo | undefined, llamaServer: LlamaServerManager, diffusionServer: OrchestratedDiffusionServer, modelManager?: ModelManager);
  orchestrateImageGeneration(config: ImageGenerationConfig): Promise<ImageGenerationResult>;
  orchestrateBatchGeneration(config: ImageGenerationConfig): Promise<ImageGenerationResult[]>;
  /** An image already queued (submitted over the HTTP API): `run` lets it go and resolves when it is done. */
  orchestrateQueuedGeneration<T>(config: Pick<ImageGenerationConfig, 'usageMode'>, run: () => Promise<T>): Promise<T>;
  onDiffusionBackendReleased(reason: DiffusionBackendReleaseReason): void;
  prepareForLLMStart(ctx: { config: LlamaServerConfig }): Promise<void>;
  offloadLLM(): Promise<void>;
  reloadLLM(): Promise<void>;
  clearSavedState(): void;
  getSavedState(): SavedLLMState | undefined;
  waitForReload(): Promise<void>;
  wouldNeedOffload(): Promise<boolean>;
}
// ---- end LLM server ----
// ---- Binary provisioning (the built-in pins: src/binaries/pins.json) ----
export type BinaryVariant = 'cuda' | 'vulkan' | 'metal' | 'cpu';
export interface BinaryProgressEvent {
  phase: 'downloading' | 'extracting' | 'finalizing' | 'verifying' | 'testing' | 'installing';
  /** 'binary', or the dependency's description. */
  file: string;
  downloaded?: number;
  total?: number;
  percent?: number;
  completedEntries?: number;
  totalEntries?: number;
  writtenBytes?: number;
  totalUncompressedBytes?: number;
}
/** The pinned releases, variants in try order (the same as genai-electron 0.26's). */
export declare const BINARY_VERSIONS: {
  readonly llamaServer: {
    readonly version: 'b9860';
    readonly variants: {
      readonly 'darwin-arm64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-macos-arm64.tar.gz';
          readonly checksum: '35a2e8c3528adc71db5044e7ad7de8d8b96a4221e737958915e31538a005f1d9';
        }];
      readonly 'darwin-x64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-macos-x64.tar.gz';
          readonly checksum: 'd442123d5441c82b23b412a58d91e149f60723adfc20a7cc9df04a3908cb5113';
        }];
      readonly 'win32-x64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-win-cuda-12.4-x64.zip';
          readonly checksum: '70c433fcb55bcb0e0ff0d4a4fc5f02c11a14303445e0525b526071bccdc6c848';
          readonly dependencies: readonly [{ readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/cudart-llama-bin-win-cuda-12.4-x64.zip'; readonly checksum: '8c79a9b226de4b3cacfd1f83d24f962d0773be79f1e7b75c6af4ded7e32ae1d6'; readonly description: 'CUDA 12.4 runtime libraries required for NVIDIA GPU acceleration' }];
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-win-vulkan-x64.zip';
          readonly checksum: 'c3f0703c8fca8fa4cbc01a347d7180fca092e889fe693268bf1192fd07350c13';
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-win-cpu-x64.zip';
          readonly checksum: 'd33871623713345cd90b54e516ebada79039cab636e51b22c8c9feae72567837';
        }];
      readonly 'linux-x64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-ubuntu-vulkan-x64.tar.gz';
          readonly checksum: '4aaa4ca2ed9f608cf26cb6ba0cdad9c5b8e8f2d1e95c4f04bb3fa9a1a8c86806';
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/ggml-org/llama.cpp/releases/download/b9860/llama-b9860-bin-ubuntu-x64.tar.gz';
          readonly checksum: 'b68e8072eb88d1cc8b8e9d6ea8237aae87b34c6d8bbffda958c870e4dc949714';
        }];
    };
  };
  readonly diffusionCpp: {
    readonly version: 'master-782-b290693';
    readonly variants: {
      readonly 'darwin-arm64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-Darwin-macOS-26.4-arm64.zip';
          readonly checksum: '61620d31fa787d318ca1ec67ba73ef77b3236bc3a2dc891d66c161c7b075e45c';
        }];
      readonly 'darwin-x64': readonly [];
      readonly 'win32-x64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-win-cuda12-x64.zip';
          readonly checksum: 'bc7aa2f6d471b324bfbc76f108a5cb3b76de29cb892d12609647e11b041f8a02';
          readonly dependencies: readonly [{ readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/cudart-sd-bin-win-cu12-x64.zip'; readonly checksum: 'fe20366827d357c00797eebb58244dddab7fd9a348d70090c3871004c320f38d'; readonly description: 'CUDA 12 runtime libraries required for NVIDIA GPU acceleration' }];
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-win-vulkan-x64.zip';
          readonly checksum: '431dd14e12cc5fb1abdc20ab213bbfdf390f18766ed7f54ecfd61d6b467a7915';
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-win-cpu-x64.zip';
          readonly checksum: '38da3539d3af6918f4c218fd198ac6e26cd71249e54feb3a491d184d3ca94ea0';
        }];
      readonly 'linux-x64': readonly [{
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-Linux-Ubuntu-24.04-x86_64-vulkan.zip';
          readonly checksum: 'e49466d0c0c5f985d9ca9f82c18bb55e8e02885c654210f918ca0c0098ea2829';
        }, {
          readonly type: BinaryVariant;
          readonly url: 'https://github.com/leejet/stable-diffusion.cpp/releases/download/master-782-b290693/sd-master-b290693-bin-Linux-Ubuntu-24.04-x86_64.zip';
          readonly checksum: '16547f8ffb35547f9058e2ea831a2eb36cfcb99594043fc97ad2895c6c485aaf';
        }];
    };
  };
};
// ---------------------------------------------------------------------------------------------
// Presets (lib/presets.js): tested model setups

export interface PresetFile {
  role: DiffusionComponentRole | 'model';
  /** Null only in a preset that `requires` this file from the caller. */
  repo: string | null;
  file: string | null;
  /** Published approximate size in bytes; null where none is recorded. */
  approxBytes: number | null;
}

export interface Preset {
  /** Also the id `downloadModel()` gives the model, except for `sdxl-split`. */
  id: string;
  name: string;
  type: ModelType;
  description: string;
  files: PresetFile[];
  /** Ready for `modelManager.downloadModel()` (add callbacks, signal... as needed). */
  download: DownloadConfig;
  /** Recommended `generateImage()` settings (diffusion presets). */
  generation?: Pick<ImageGenerationConfig, 'width' | 'height' | 'steps' | 'cfgScale' | 'sampler'>;
  /** Recommended server settings (LLM presets). */
  server?: { contextSize: number };
  /** Present when the caller must supply the main file (`'unet'` for `sdxl-split`). */
  requires?: 'unet';
}

export declare const PRESETS: readonly Readonly<Preset>[];
/**
 * A fresh copy of a preset, or undefined for an unknown id. `main` supplies (or replaces) the
 * main file: required by `sdxl-split` (a UNet with original LDM tensor names).
 * @throws TypeError when the preset requires `main` and none is given
 */
export declare function getPreset(id: string, main?: { repo: string; file: string; revision?: string } | { url: string }): Preset | undefined;
