// One download through genai-electron's modelManager.downloadModel. argv[2]: job JSON.
// `electron` resolves to the stub package bench/download.mjs writes into bench/node_modules.
import { measure } from './common.mjs';

const job = JSON.parse(process.argv[2]);
process.env.BENCH_ELECTRON_USER_DATA = job.userData;
const { modelManager } = await import('genai-electron');

await measure(async (onProgress) => {
  const info = await modelManager.downloadModel({ ...job.config, onProgress });
  return { size: info.size, checksum: info.checksum || info.components?.diffusion_model?.checksum };
});
