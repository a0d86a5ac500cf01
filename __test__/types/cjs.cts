// Compiled by types.test.js with module/moduleResolution nodenext: a CommonJS app's require()
// of the package resolves to its declarations.
import g = require('genai-electron-rs');

const bytes: string = g.formatBytes(1536);
const status: Promise<g.MemoryTelemetryRefreshStatus> = g.systemInfo.refreshMemoryTelemetry();
export = [bytes, status, g.PATHS.loras, g.getBinaryPath('diffusion', 'sd-server')];
