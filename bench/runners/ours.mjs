// One download through genai-electron-rs (this package, release build). argv[2]: job JSON.
import { createRequire } from 'node:module';
import { measure } from './common.mjs';

const require = createRequire(import.meta.url);
const job = JSON.parse(process.argv[2]);
const g = require('../../index.js');
g.configure({ userDataPath: job.userData });

await measure(async (onProgress) => {
  const info = await g.modelManager.downloadModel({ ...job.config, onProgress });
  return { size: info.size, checksum: info.checksum || info.components?.diffusion_model?.checksum };
});
