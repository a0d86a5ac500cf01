// Compiled by types.test.js with module/moduleResolution nodenext: an ESM app's named imports of
// the package resolve to its declarations.
import { diffusionServer, systemInfo, formatErrorForUI, attachAppLifecycle, DIFFUSION_BACKEND_DEFAULTS, ChecksumError } from 'genai-electron-rs';
import type { ModelInfo, UIErrorFormat, ParsedGGUFData } from 'genai-electron-rs';

const ui: UIErrorFormat = formatErrorForUI(new ChecksumError('x', { expected: 'a', actual: 'b' }));
const idle: number = DIFFUSION_BACKEND_DEFAULTS.idleTimeoutMs;
declare const model: ModelInfo;
declare const raw: ParsedGGUFData;
const arch: unknown = raw.metadata['general.architecture'];
attachAppLifecycle({ on: () => undefined, exit: () => undefined }, { diffusionServer });
export const used = [ui, idle, arch, systemInfo.canRunModel(model, { contextSize: 4096, gpuLayers: 10, cacheTypeK: 'q8_0' })];
