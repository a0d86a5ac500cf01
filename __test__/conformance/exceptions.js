'use strict';
/**
 * Where genai-electron-rs does not (yet) conform to genai-electron 0.26's type declarations: the
 * one list the conformance test accepts, each entry with its reason. `doc` is the text under which
 * docs/migration.md describes the entry (the test checks it is there).
 *
 * - `kind: 'difference'`: deliberate; the migration guide says why.
 * - `kind: 'not-provided'`: the export does not exist here yet.
 * - `kind: 'pending'`: provided, but its declarations still follow the older shape; work on that
 *   area is under way. When it lands the test reports the entry as no longer needed: delete it.
 *
 * `members` narrows an entry to those members of a class or singleton: the rest of it must
 * conform, and the test checks the listed members separately.
 */

const LLM_CALIBRATION_TYPES = [
  'LlamaCalibrationProfile',
  'LlamaCalibrationOverrides',
  'LlamaCalibrationFixedConfig',
  'LlamaCalibrationCombo',
  'LlamaColdPrefillWorkload',
  'LlamaSharedPrefixWorkload',
  'LlamaCalibrationWorkload',
  'LlamaCalibrationOperationalStatus',
  'LlamaCalibrationProbePurpose',
  'LlamaAdaptiveCalibrationProbePurpose',
  'LlamaCalibrationProbeFidelity',
  'LlamaCalibrationProbePhase',
  'LlamaAdaptiveCalibrationPhase',
  'LlamaExactCalibrationPhase',
  'LlamaCalibrationPhase',
  'LlamaCalibrationTerminalStatus',
  'LlamaExactCalibrationTerminalStatus',
  'LlamaAdaptiveProgressBudget',
  'LlamaAdaptiveActiveProbe',
  'LlamaExactProgressCandidates',
  'LlamaExactActiveCandidate',
  'LlamaCalibrationProgress',
  'LlamaAdaptiveCalibrationConfig',
  'LlamaExactCalibrationConfig',
  'LlamaCalibrationConfig',
  'LlamaCalibrationStatus',
  'LlamaCalibrationRequestTiming',
  'LlamaCalibrationSample',
  'LlamaCalibrationWorkloadResult',
  'LlamaCalibrationMemoryEvidence',
  'LlamaCalibrationBoundaryDecision',
  'LlamaCalibrationCleanupRecord',
  'LlamaCalibrationResourceMetric',
  'LlamaCalibrationResourceChangeDirection',
  'LlamaCalibrationResourceBoundaryKind',
  'LlamaCalibrationResourceUntrustedReason',
  'LlamaCalibrationResourceReading',
  'LlamaCalibrationResourceSnapshotDiagnostic',
  'LlamaCalibrationResourceBoundaryDiagnostic',
  'LlamaCalibrationProbeResourceBoundaries',
  'LlamaCalibrationResourceMonitoringCoverage',
  'LlamaCalibrationResourceMetricMonitoring',
  'LlamaCalibrationResourceMonitoring',
  'LlamaCalibrationResourceFailure',
  'LlamaAdaptiveCalibrationSelectionEvidence',
  'LlamaCalibrationProbeResourceValidity',
  'LlamaCalibrationPassiveDiagnostics',
  'LlamaCalibrationProbe',
  'ResolvedLlamaCalibrationConfig',
  'LlamaCalibrationRun',
  'LlamaCalibrationRecommendation',
  'LlamaCalibrationFallback',
  'LlamaCalibrationWorkloadSignature',
  'LlamaCalibrationModelIdentity',
  'LlamaCalibrationBinaryIdentity',
  'LlamaCalibrationMachineIdentity',
  'LlamaCalibrationVerifiedProfile',
  'LlamaAdaptiveCalibrationProfileReport',
  'LlamaAdaptiveCalibrationCellReport',
  'LlamaAdaptiveCalibrationBudgetReport',
  'LlamaCalibrationResourceStabilityMethodology',
  'LlamaCalibrationMethodology',
  'LlamaAdaptiveCalibrationReport',
  'LlamaExactCalibrationReport',
  'LlamaAdaptiveCalibrationPreparationTimeLimit',
  'LlamaCalibrationReport',
  'LlamaCalibrationPartialReport',
  'LlamaAdaptiveCalibrationBestKnown',
  'LlamaExactCalibrationBestKnown',
  'LlamaCalibrationResourceFailurePartialReport',
];

module.exports = [
  // ---- Deliberate differences
  {
    names: ['InsufficientResourcesError'],
    kind: 'difference',
    doc: '`InsufficientResourcesError.details`',
    reason:
      'details.required/available are byte counts for a download that does not fit on disk and absent when the disk fills during a transfer; 0.26 types both as required strings.',
  },

  {
    names: ['diffusionServer', 'DiffusionServerManager'],
    members: [
      'getOrchestrator',
      'calibrate',
      'getConfig',
      // EventEmitter methods that return `this`: 0.26's class, whose private members make any
      // other class unassignable to it. The event payloads are checked as their own types
      // (DiffusionBackendStatusEvent, DiffusionCalibrationProgress, ...).
      'on',
      'once',
      'addListener',
      'prependListener',
      'prependOnceListener',
      'off',
      'removeListener',
      'removeAllListeners',
      'setMaxListeners',
    ],
    kind: 'difference',
    doc: '`getOrchestrator()`',
    reason:
      "getOrchestrator() returns the orchestrator set with setOrchestrator(), typed as the interface the manager calls; 0.26's ResourceOrchestrator class has private members, so no other type is assignable to it. calibrate() resolves with a DiffusionCalibrationReport (see its entry). getConfig() returns the DiffusionServerConfig given to start(); 0.26 declares it with the LLM server's ServerConfig inherited from its base class. EventEmitter methods return `this`, 0.26's own class type.",
  },
  {
    names: ['GenerationState'],
    kind: 'difference',
    doc: '`GenerationState.config`',
    reason: "0.26's registry keeps each request's config in the entry; the HTTP API never sends it, and neither does this package.",
  },
  {
    names: ['DiffusionCalibrationReport'],
    kind: 'difference',
    doc: '`DiffusionCalibrationReport.sampler`',
    reason: 'Echoes the sampler calibrated with, which may be one of the samplers this package accepts beyond 0.26 (ImageSampler is a superset).',
  },

  // ---- The LLM server and its calibration (not provided yet)
  {
    names: ['llamaServer', 'LlamaServerManager', 'LlamaServerReadyState', 'LlamaServerConfig', 'LlamaPreStartHook', 'ServerConfig', 'OptimalConfigHints', 'FlashAttentionSetting', 'LLAMA_CALIBRATION_DEFAULTS'],
    kind: 'not-provided',
    doc: '`llamaServer`, `LlamaServerManager`',
    reason: 'The llama.cpp server manager and its configuration types are not provided yet.',
  },
  {
    names: ['SystemInfo', 'systemInfo'],
    members: ['getOptimalConfig'],
    kind: 'not-provided',
    doc: '`systemInfo.getOptimalConfig()`',
    reason: 'getOptimalConfig() returns a llama-server configuration; it arrives with the LLM server.',
  },
  {
    names: ['ResourceOrchestrator', 'SavedLLMState'],
    kind: 'not-provided',
    doc: '`ResourceOrchestrator`',
    reason: 'LLM offload around image generation arrives with the LLM server.',
  },
  {
    names: [...LLM_CALIBRATION_TYPES, 'LlamaCalibrationResourceStabilityError', 'LlamaCalibrationResourceStabilityDetailsCommon', 'LlamaCalibrationResourceStabilityDetails'],
    kind: 'not-provided',
    doc: '`Llama*Calibration*` types',
    reason:
      'LLM calibration types are not provided yet; LlamaCalibrationResourceStabilityError exists, but its details.partialReport is typed unknown until the calibration report types exist.',
  },

  // ---- Binary provisioning and server plumbing (not provided yet)
  {
    names: ['BINARY_VERSIONS', 'BinaryProgressEvent'],
    kind: 'not-provided',
    doc: '`BINARY_VERSIONS`',
    reason: 'Binary provisioning (pinned llama.cpp / stable-diffusion.cpp releases and their download events) is not provided yet.',
  },
  {
    names: ['ServerManager', 'ProcessManager', 'LogManager', 'GenerationRegistry', 'Downloader', 'SpawnOptions', 'SpawnResult', 'LogRotationOptions', 'ServerEventData'],
    kind: 'not-provided',
    doc: '`ServerManager`, `ProcessManager`, `LogManager`, `GenerationRegistry`, `Downloader`',
    reason:
      "genai-electron's internal building blocks (process spawning, log files, the job map, the single-stream downloader); this library does that work natively and does not expose it as classes.",
  },
];
