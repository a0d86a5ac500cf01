#!/usr/bin/env node
'use strict';
/**
 * The genai-electron-rs command line, written on the package's public API only. Errors print
 * `error <CODE>: <message>` (or JSON with --json) and exit 1 (2 for bad usage, 130 on Ctrl-C).
 */

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const lib = require('..');
const fmt = require('./lib/progress.js');
const { doctor, printDoctor } = require('./lib/doctor.js');

const USAGE = `Usage: genai-electron-rs <command> [options]

Commands:
  presets                         tested model setups
  pull <preset|config.json>       download a model (resumes an interrupted download)
                                  --unet <repo>/<file>  the UNet of the sdxl-split preset
  list [--type llm|diffusion]     downloaded models
  info <id>                       one model's record
  verify <id>                     check a model's files against their checksums
  rm <id>                         delete a model (files other models use are kept)
  serve <id> [--port N]           run the model's server until Ctrl-C
  generate <id> "<prompt>" -o out.png
                                  [--width N --height N --steps N --cfg-scale X --seed N
                                   --sampler NAME --negative TEXT]
  doctor                          system, GPU, binaries, storage, and what start() would use

Options: --json (machine-readable output), --progress bar|plain|none, -h/--help, -v/--version
Storage: GENAI_ELECTRON_USER_DATA; Hugging Face: HF_ENDPOINT, HF_TOKEN.`;

/** An error of the command line itself (bad usage, unknown preset...), printed like the library's. */
class CliError extends Error {
  constructor(code, message, exitCode = 1) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

const OPTIONS = {
  json: { type: 'boolean' },
  progress: { type: 'string' },
  type: { type: 'string' },
  unet: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  output: { type: 'string', short: 'o' },
  width: { type: 'string' },
  height: { type: 'string' },
  steps: { type: 'string' },
  'cfg-scale': { type: 'string' },
  seed: { type: 'string' },
  sampler: { type: 'string' },
  negative: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
};

function parse(argv) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError('INVALID_ARGUMENT', err.message, 2);
  }
}

function int(values, name) {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (name !== 'cfg-scale' && !Number.isInteger(n))) {
    throw new CliError('INVALID_ARGUMENT', `--${name} expects a number, got ${JSON.stringify(v)}`, 2);
  }
  return n;
}

function need(positionals, count, what) {
  if (positionals.length < count + 1) throw new CliError('INVALID_ARGUMENT', `missing ${what}\n\n${USAGE}`, 2);
}

class Cli {
  constructor(values, stdout, stderr) {
    this.values = values;
    this.out = stdout;
    this.err = stderr;
    const mode = values.progress || (values.json ? 'none' : stdout.isTTY ? 'bar' : 'plain');
    if (!['bar', 'plain', 'none'].includes(mode)) throw new CliError('INVALID_ARGUMENT', '--progress expects bar, plain or none', 2);
    this.progress = new fmt.Progress(stdout, mode);
    this.interrupted = false;
    this.onInterrupt = null;
  }

  print(text) {
    this.out.write(`${text}\n`);
  }

  json(value) {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** Runs `onInterrupt` on the first Ctrl-C (or SIGTERM); a second one ends at once. */
  trapSignals() {
    const handler = (signal) => {
      if (this.interrupted) process.exit(130);
      this.interrupted = true;
      this.progress.end();
      this.err.write(`\n${signal === 'SIGINT' ? 'Interrupted' : 'Terminated'}: stopping cleanly (again to force)\n`);
      if (this.onInterrupt) this.onInterrupt();
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  }

  presets() {
    if (this.values.json) return this.json(lib.PRESETS);
    for (const p of lib.PRESETS) {
      const sizes = p.files.map((f) => f.approxBytes);
      const total = sizes.every((s) => typeof s === 'number') ? `~${fmt.bytes(sizes.reduce((a, b) => a + b, 0))}` : 'size varies';
      this.print(`${p.id.padEnd(26)} ${p.type.padEnd(9)} ${total.padEnd(12)} ${p.name}`);
      this.print(`${' '.repeat(27)}${p.description}`);
    }
  }

  downloadConfigFor(spec) {
    if (spec.endsWith('.json') || fs.existsSync(spec)) {
      let config;
      try {
        config = JSON.parse(fs.readFileSync(spec, 'utf8'));
      } catch (err) {
        throw new CliError('INVALID_CONFIG', `cannot read ${spec}: ${err.message}`);
      }
      if (!config || typeof config !== 'object' || Array.isArray(config)) throw new CliError('INVALID_CONFIG', `${spec} must hold a DownloadConfig object`);
      return config;
    }
    const known = lib.PRESETS.find((p) => p.id === spec);
    if (!known) throw new CliError('PRESET_NOT_FOUND', `no preset or config file named ${JSON.stringify(spec)} (see \`genai-electron-rs presets\`)`);
    let main;
    if (known.requires) {
      const unet = this.values.unet;
      const slash = unet ? unet.lastIndexOf('/') : -1;
      if (!unet || slash <= 0 || unet.indexOf('/') === slash) {
        throw new CliError('INVALID_ARGUMENT', `preset ${spec} needs --unet <owner>/<repo>/<file> (a UNet with original LDM tensor names)`, 2);
      }
      const parts = unet.split('/');
      main = { repo: parts.slice(0, 2).join('/'), file: parts.slice(2).join('/') };
    }
    return lib.getPreset(spec, main).download;
  }

  async pull(spec) {
    const config = this.downloadConfigFor(spec);
    const controller = new AbortController();
    this.onInterrupt = () => controller.abort();
    let component = null;
    const started = Date.now();
    const model = await lib.modelManager.downloadModel({
      ...config,
      signal: controller.signal,
      onComponentStart: ({ role, filename, index, total }) => {
        component = role;
        this.progress.stage(`[${index}/${total}] ${role}: ${filename}`);
      },
      onProgress: (downloaded, total, info) => {
        const label = component ? '' : info && info.file ? `${info.file}  ` : '';
        this.progress.update(`${label}${fmt.downloadLine(downloaded, total, info)}`, { force: info && info.phase === 'done' });
      },
    });
    this.progress.end();
    const seconds = (Date.now() - started) / 1000;
    if (this.values.json) return this.json(model);
    this.print(`Downloaded ${model.id}: ${fmt.bytes(model.size)} in ${fmt.duration(seconds)}`);
    this.print(`Next: genai-electron-rs ${model.type === 'diffusion' ? `generate ${model.id} "a prompt" -o out.png` : `serve ${model.id}`}`);
  }

  async list() {
    const type = this.values.type;
    if (type !== undefined && type !== 'llm' && type !== 'diffusion') throw new CliError('INVALID_ARGUMENT', '--type expects llm or diffusion', 2);
    const models = await lib.modelManager.listModels(type);
    if (this.values.json) return this.json(models);
    if (models.length === 0) return this.print('No models. Download one with `genai-electron-rs pull <preset>` (see `presets`).');
    for (const m of models) {
      // Files shared with another model (a common text encoder, say) stay when this one is removed.
      const shared = m.sharedSize > 0 ? `  (${fmt.bytes(m.sharedSize)} shared)` : '';
      this.print(`${m.id.padEnd(32)} ${m.type.padEnd(9)} ${fmt.bytes(m.size).padStart(10)}  ${m.name}${shared}`);
    }
    const used = await lib.StorageManager.getInstance().getStorageUsed(type);
    this.print(`${models.length} model${models.length === 1 ? '' : 's'}, ${fmt.bytes(used)} on disk`);
  }

  async info(id) {
    const m = await lib.modelManager.getModelInfo(id);
    if (this.values.json) return this.json(m);
    this.print(`${m.id}  (${m.type}, ${fmt.bytes(m.size)})`);
    this.print(`  name        ${m.name}`);
    this.print(`  downloaded  ${m.downloadedAt}`);
    const src = m.source || {};
    this.print(`  source      ${src.repo ? `${src.repo}/${src.file || ''}` : src.url || src.type || '?'}`);
    if (m.components) {
      for (const [role, c] of Object.entries(m.components)) this.print(`  ${role.padEnd(16)} ${fmt.bytes(c.size).padStart(10)}  ${c.path}`);
    } else {
      this.print(`  path        ${m.path}`);
    }
  }

  async verify(id) {
    const ok = await lib.modelManager.verifyModel(id);
    if (this.values.json) this.json({ id, valid: ok });
    else this.print(ok ? `${id}: OK` : `${id}: FAILED (a file is missing, incomplete or does not match its checksum)`);
    if (!ok) throw new CliError('VERIFY_FAILED', `${id} did not verify`, 1);
  }

  async rm(id) {
    await lib.modelManager.deleteModel(id);
    if (this.values.json) this.json({ id, deleted: true });
    else this.print(`Deleted ${id}`);
  }

  /** The server that runs `model`: the diffusion server, or llamaServer for LLMs. */
  serverFor(model) {
    if (model.type === 'diffusion') return { server: lib.diffusionServer, kind: 'diffusion' };
    return { server: lib.llamaServer, kind: 'llama' };
  }

  async serve(id) {
    const model = await lib.modelManager.getModelInfo(id);
    const { server, kind } = this.serverFor(model);
    const port = this.values.port === undefined ? undefined : this.values.port === 'auto' ? 'auto' : int(this.values, 'port');
    const config = { modelId: id };
    // The diffusion server loads sd-server on start, so a model that cannot load fails here.
    if (kind === 'diffusion') config.preload = true;
    if (port !== undefined) config.port = port;
    if (this.values.host) config.host = this.values.host;
    const stopped = new Promise((resolve) => {
      this.onInterrupt = resolve;
    });
    this.trapSignals();
    let info;
    try {
      info = await server.start(config);
    } catch (err) {
      if (this.interrupted) return this.exitAfterInterrupt();
      throw err;
    }
    const url = `http://${config.host || '127.0.0.1'}:${info.port}`;
    if (this.values.json) this.out.write(`${JSON.stringify({ modelId: id, server: kind, url, port: info.port, pid: info.pid })}\n`);
    else this.print(`Serving ${id} (${kind}) at ${url}  (Ctrl-C to stop)`);
    if (!this.interrupted) await stopped;
    await server.stop();
    // Ctrl-C is how a server is meant to end: a clean stop is a success.
    if (!this.values.json) this.print('Stopped');
    return undefined;
  }

  exitAfterInterrupt() {
    throw new CliError('INTERRUPTED', 'interrupted', 130);
  }

  async generate(id, prompt) {
    const output = this.values.output;
    if (!output) throw new CliError('INVALID_ARGUMENT', 'generate needs -o <file.png>', 2);
    const model = await lib.modelManager.getModelInfo(id);
    if (model.type !== 'diffusion') throw new CliError('INVALID_ARGUMENT', `${id} is an ${model.type} model, not a diffusion model`, 2);
    const preset = lib.PRESETS.find((p) => p.id === id);
    const request = { ...(preset && preset.generation), prompt };
    const overrides = { width: 'width', height: 'height', steps: 'steps', cfgScale: 'cfg-scale', seed: 'seed' };
    for (const [key, flag] of Object.entries(overrides)) {
      const v = int(this.values, flag);
      if (v !== undefined) request[key] = v;
    }
    if (this.values.sampler) request.sampler = this.values.sampler;
    if (this.values.negative) request.negativePrompt = this.values.negative;

    let cancel = null;
    this.onInterrupt = () => cancel && cancel();
    this.trapSignals();
    this.progress.stage(`Starting the diffusion server for ${id}`);
    let result;
    try {
      await lib.diffusionServer.start({ modelId: id, port: 'auto' });
      if (this.interrupted) return this.exitAfterInterrupt();
      let stage = null;
      const job = lib.diffusionServer.generateImage({
        ...request,
        onProgress: (step, total, st, pct) => {
          if (st !== stage) {
            stage = st;
            this.progress.end();
          }
          this.progress.update(fmt.stepLine(step, total, st, pct), { force: step === total });
        },
      });
      cancel = () => {
        const active = lib.diffusionServer.getActiveGenerationId();
        if (active) lib.diffusionServer.cancelImageGeneration(active).catch(() => {});
      };
      result = await job;
      this.progress.end();
    } catch (err) {
      this.progress.end();
      if (this.interrupted) return this.exitAfterInterrupt();
      throw err;
    } finally {
      await lib.diffusionServer.stop();
    }
    fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
    fs.writeFileSync(output, result.image);
    const summary = { output: path.resolve(output), width: result.width, height: result.height, seed: result.seed, timeTaken: result.timeTaken };
    if (this.values.json) return this.json(summary);
    this.print(`Saved ${output} (${result.width}x${result.height}, seed ${result.seed}, ${(result.timeTaken / 1000).toFixed(1)} s)`);
  }

  async doctor() {
    const report = await doctor();
    if (this.values.json) return this.json(report);
    printDoctor(report, this.out, fmt);
  }
}

async function main(argv) {
  const { values, positionals } = parse(argv);
  if (values.version) return process.stdout.write(`${require('../package.json').version}\n`);
  const [command, ...args] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    if (!command && !values.help) throw new CliError('INVALID_ARGUMENT', 'no command given', 2);
    return undefined;
  }
  const cli = new Cli(values, process.stdout, process.stderr);
  switch (command) {
    case 'presets':
      return cli.presets();
    case 'pull':
      need(positionals, 1, 'a preset id or a config.json');
      cli.trapSignals();
      return cli.pull(args[0]);
    case 'list':
      return cli.list();
    case 'info':
      need(positionals, 1, 'a model id');
      return cli.info(args[0]);
    case 'verify':
      need(positionals, 1, 'a model id');
      return cli.verify(args[0]);
    case 'rm':
      need(positionals, 1, 'a model id');
      return cli.rm(args[0]);
    case 'serve':
      need(positionals, 1, 'a model id');
      return cli.serve(args[0]);
    case 'generate':
      need(positionals, 2, 'a model id and a prompt');
      return cli.generate(args[0], args[1]);
    case 'doctor':
      return cli.doctor();
    default:
      throw new CliError('UNKNOWN_COMMAND', `unknown command ${JSON.stringify(command)}\n\n${USAGE}`, 2);
  }
}

function report(err, json) {
  const code = err.code || (err instanceof TypeError ? 'INVALID_ARGUMENT' : 'ERROR');
  const message = err.message || String(err);
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message, details: err.details } })}\n`);
  else if (code !== 'INTERRUPTED') process.stderr.write(`error ${code}: ${message}\n`);
  return err.exitCode || 1;
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    const json = process.argv.includes('--json');
    // A download stopped by Ctrl-C rejects with the library's "cancelled" error: keep its code.
    if (err && err.code === 'DOWNLOAD_FAILED' && /cancel/i.test(err.message)) {
      process.stderr.write('The partial download is kept: run the same command again to resume.\n');
      report(err, json);
      process.exit(130);
    }
    process.exit(report(err, json));
  },
);
