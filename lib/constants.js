'use strict';
/** Constants of the contract (section 3 and 1.1). */

const DEFAULT_PORTS = Object.freeze({ llama: 8080, diffusion: 8081 });

const DIFFUSION_COMPONENT_FLAGS = Object.freeze({
  diffusion_model: '--diffusion-model',
  clip_l: '--clip_l',
  clip_g: '--clip_g',
  t5xxl: '--t5xxl',
  llm: '--llm',
  llm_vision: '--llm_vision',
  vae: '--vae',
});

const DIFFUSION_COMPONENT_ORDER = Object.freeze([
  'diffusion_model',
  'clip_l',
  'clip_g',
  't5xxl',
  'llm',
  'llm_vision',
  'vae',
]);

module.exports = { DEFAULT_PORTS, DIFFUSION_COMPONENT_FLAGS, DIFFUSION_COMPONENT_ORDER };
