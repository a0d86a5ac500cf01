/**
 * genai-electron-rs: public types. Names and shapes follow genai-electron's API so existing code
 * switches by changing its import.
 */

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
  [key: string]: unknown;
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
  attention_head_count?: number;
  attention_head_count_kv?: number | number[];
  attention_key_length?: number | number[];
  attention_sliding_window?: number;
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
  [key: string]: unknown;
}

export type DownloadProgressCallback = (downloaded: number, total: number) => void;

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
   * Never deletes anything outside `<userData>/models/`.
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
  updateModelMetadata(id: string, options?: { source?: MetadataFetchStrategy }): Promise<ModelInfo>;
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
  /** Bytes used by all records, shared files counted once. */
  getStorageUsed(type?: ModelType): Promise<number>;
}

/** Reads the GGUF header of a local file. @throws DownloadError */
export declare function fetchLocalGGUFMetadata(filePath: string): Promise<GGUFMetadata>;

/** Storage paths under the resolved userData root (read lazily). */
export declare const PATHS: {
  readonly userData: string;
  readonly models: { llm: string; diffusion: string };
  readonly binaries: { llama: string; diffusion: string };
  readonly logs: string;
  readonly config: string;
  readonly temp: string;
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
  recommendedQuantization: string[];
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
  platform: string;
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
}

export interface CanRunModelResult {
  possible: boolean;
  reason?: string;
  suggestion?: string;
  /** Present (true) when decided on a simulated machine. */
  simulated?: true;
}

export interface GPUInfoOptions {
  /** Deadline for each probe command in ms (default 10000). */
  timeoutMs?: number;
}

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
  getGPUInfo(options?: GPUInfoOptions): Promise<GPUInfo>;
  /**
   * Whether the model fits in RAM: `size × 1.2` (CPU share only with `gpuLayers`) against total
   * or available RAM; over 8 GiB without GPU is possible with an advisory `reason`.
   * @throws TypeError for a record without a numeric `size`
   */
  canRunModel(modelInfo: Pick<ModelInfo, 'size'> & Partial<ModelInfo>, options?: CanRunModelOptions): Promise<CanRunModelResult>;
  /** Forgets the cached `detect()` result. */
  clearCache(): void;
}

export declare const systemInfo: SystemInfo;

// ---------------------------------------------------------------------------------------------
// Constants

export declare const DEFAULT_PORTS: Readonly<{ llama: 8080; diffusion: 8081 }>;
export declare const DIFFUSION_COMPONENT_FLAGS: Readonly<Record<DiffusionComponentRole, string>>;
export declare const DIFFUSION_COMPONENT_ORDER: readonly DiffusionComponentRole[];

// ---------------------------------------------------------------------------------------------
// Errors (contract section 5)

export declare class GenaiElectronError extends Error {
  constructor(message: string, code: string, details?: unknown);
  readonly code: string;
  details?: unknown;
}
export declare class ModelNotFoundError extends GenaiElectronError {
  constructor(modelId: string);
}
export declare class DownloadError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
}
export declare class InsufficientResourcesError extends GenaiElectronError {
  constructor(message: string, details?: { required?: unknown; available?: unknown; suggestion?: string; [k: string]: unknown });
}
export declare class ServerError extends GenaiElectronError {
  constructor(message: string, details?: unknown);
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
