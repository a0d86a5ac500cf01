// Compiled with `tsc --noEmit --strict` by presets.test.js: the preset declarations describe how
// the catalogue is used (the README quick start, typed).
import { PRESETS, getPreset, modelManager, diffusionServer } from '../../index';
import type { Preset, PresetFile, DownloadConfig } from '../../index';

async function main(): Promise<void> {
  const preset: Preset | undefined = getPreset('flux-2-klein-4b-q40');
  if (!preset) return;
  const config: DownloadConfig = { ...preset.download, onProgress: (done, total) => console.log(done / total) };
  const model = await modelManager.downloadModel(config);
  await diffusionServer.start({ modelId: model.id });
  const { image } = await diffusionServer.generateImage({ ...preset.generation, prompt: 'a lighthouse' });
  void image.byteLength;
  const split = getPreset('sdxl-split', { repo: 'org/unet', file: 'unet.safetensors' });
  const sizes: (number | null)[] = PRESETS.flatMap((p) => p.files.map((f: PresetFile) => f.approxBytes));
  void split;
  void sizes;
  // @ts-expect-error the catalogue is read-only
  PRESETS[0].id = 'x';
  const ctx: number | undefined = PRESETS.find((p) => p.type === 'llm')?.server?.contextSize;
  void ctx;
}
void main;
