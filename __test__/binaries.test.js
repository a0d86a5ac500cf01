'use strict';
/**
 * Binary provisioning end to end: diffusionServer.start() with nothing installed downloads a
 * release archive from a local server (archives built here, holding the fake sd programs),
 * extracts, validates and installs it; later starts reuse it. Pins always point at 127.0.0.1
 * through GENAI_ELECTRON_BINARY_MANIFEST (or the mirror variable), never at the internet.
 */
const { test, describe, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const { pathToFileURL } = require('node:url');
const g = require('..');
const h = require('./helpers/diffusion.js');
const { tempRoot } = require('./helpers/storage.js');
const A = require('./helpers/archives.js');
const hl = require('./helpers/llama.js');
const { startHfServer } = require('./fixtures/hf-server.js');

const PLATFORM = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch}`;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

let srv;
let tmp;
let root;
let server;
let args;
let n = 0;

/** The fake sd-server/sd-cli folder as a release archive (programs at the top, like upstream). */
const release = (fmt = 'zip') => (fmt === 'zip' ? A.zip : A.tarGz)(A.dirEntries(h.FAKE_SD_DIR));

/** A build whose sd-server answers --help but dies on real work with a GPU error line. */
const brokenGpuBuild = () =>
  A.zip([
    { name: 'sd-server', mode: 0o755, data: '#!/bin/sh\nif [ "$1" = "--help" ]; then echo usage; exit 0; fi\necho "vkCreateDevice failed (-3)" >&2\nexit 1\n' },
    { name: 'sd-cli', mode: 0o755, data: '#!/bin/sh\nexit 0\n' },
  ]);

/** Serves `buf` and returns a variant row pointing at it. */
function serve(type, buf, { ext = '.zip', checksum } = {}) {
  const f = srv.addRawFile(`/releases/t${++n}/sd-${type}${ext}`, buf);
  return { type, url: f.url, checksum: checksum ?? f.sha256, path: f.path };
}

function useManifest(variants, { version = 'test-1', extra = {} } = {}) {
  const file = path.join(tmp, `manifest-${++n}.json`);
  const rows = variants.map(({ path: _p, ...v }) => v);
  fs.writeFileSync(
    file,
    JSON.stringify({ diffusionCpp: { version, binaries: ['sd-server', 'sd-cli'], variants: { [PLATFORM]: rows }, ...extra } }),
  );
  process.env.GENAI_ELECTRON_BINARY_MANIFEST = file;
  return file;
}

function record(srvEvents) {
  const events = [];
  for (const e of ['binary-log', 'binary-progress', 'started']) srvEvents.on(e, (x) => events.push([e, x]));
  return events;
}

const phases = (events) =>
  events
    .filter(([e]) => e === 'binary-progress')
    .map(([, x]) => x.phase)
    .filter((p, i, a) => p !== a[i - 1]);
const logs = (events) => events.filter(([e]) => e === 'binary-log').map(([, x]) => x.message);
const installDir = () => path.join(root, 'binaries', 'diffusion');
const helpRuns = () => args.all().filter((a) => a.includes('--help')).length;
const start = (extra = {}) => server.start({ modelId: 'flux-2-klein', port: 'auto', ...extra });

before(async () => {
  srv = await startHfServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-rs-bin-'));
  process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(tmp, null);
  process.env.FAKE_SD_STEP_MS = '1';
  // The model files are headers only: the fake sd-server generates from them only when told so.
  process.env.FAKE_SD_HEADER_ONLY = '1';
  delete process.env.GENAI_ELECTRON_SD_BINARY_DIR;
  delete process.env.GENAI_ELECTRON_BINARY_MIRROR;
  args = h.argsLog(tmp);
});

after(async () => {
  await srv.close();
});

beforeEach(() => {
  root = tempRoot('genai-rs-binroot-');
  g.configure({ userDataPath: root });
  h.kleinRecord(root);
  server = new g.DiffusionServerManager();
  srv.resetStats();
  srv.clearFaults();
  args.clear();
  delete process.env.GENAI_ELECTRON_BINARY_MIRROR;
});

afterEach(async () => {
  await server.stop();
});

describe('provisioning on start()', () => {
  test('first start downloads, validates, installs and starts; events in order', async () => {
    const buf = release();
    const cpu = serve('cpu', buf);
    useManifest([cpu]);
    const events = record(server);
    const statuses = [];
    server.on('status', (st, prev) => statuses.push(`${prev}->${st}`));
    const seen = new Set();
    server.on('binary-progress', () => seen.add(server.getStatus()).add(server.getInfo().status));
    const starting = start();
    await once(server, 'binary-progress');
    // As 0.26: the server is `starting` while its binary is provisioned, and a second start waits.
    await assert.rejects(start(), (e) => e instanceof g.ServerError && e.message === 'Server error: Server is already starting');
    const info = await starting;
    assert.equal(info.status, 'running');
    assert.deepEqual([...seen], ['starting']);
    assert.deepEqual(statuses, ['stopped->starting', 'starting->running']);
    assert.equal(srv.statsFor(cpu.path).get, 1);
    assert.deepEqual(phases(events), ['downloading', 'verifying', 'extracting', 'finalizing', 'testing', 'installing']);
    assert.equal(events[events.length - 1][0], 'started', 'every binary event comes before started');
    const dl = events.filter(([e, x]) => e === 'binary-progress' && x.phase === 'downloading').map(([, x]) => x);
    assert.deepEqual(
      [dl[dl.length - 1].percent, dl[dl.length - 1].downloaded, dl[dl.length - 1].total, dl[dl.length - 1].file],
      [100, buf.length, buf.length, 'binary'],
    );
    const ex = events.filter(([e, x]) => e === 'binary-progress' && x.phase === 'extracting' && x.totalEntries).map(([, x]) => x);
    assert.equal(ex[ex.length - 1].completedEntries, ex[ex.length - 1].totalEntries);
    const messages = logs(events);
    for (const want of [/Trying cpu variant/, /Phase 1: ✓/, /Phase 2: ✓/, /Successfully installed cpu variant/]) {
      assert.ok(messages.some((m) => want.test(m)), `${want} in ${messages.join(' | ')}`);
    }
    // genai-electron 0.26's records, so both libraries share the install.
    const dir = installDir();
    const v = JSON.parse(fs.readFileSync(path.join(dir, '.validation.json'), 'utf8'));
    assert.equal(v.variant, 'cpu');
    assert.equal(v.version, 'test-1');
    assert.equal(v.checksum, sha256(fs.readFileSync(path.join(dir, 'sd-server'))));
    assert.equal(v.phase1Passed, true);
    assert.equal(v.phase2Passed, true);
    assert.ok(!Number.isNaN(Date.parse(v.validatedAt)));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, '.variant.json'), 'utf8')), { variant: 'cpu', platform: PLATFORM });
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, '.deps.json'), 'utf8')), { version: 1, dependencies: [] });
    assert.ok(fs.statSync(path.join(dir, 'sd-cli')).mode & 0o100);
    // Phase 2 ran the archive's own sd-server on the model: a 64x64, 1-step image.
    const phase2 = args.all().find((a) => a.includes('--listen-port') && a.includes('--llm'));
    assert.ok(phase2, 'phase 2 started sd-server with the model components');
    // Nothing left behind but the install and the lock.
    const left = fs.readdirSync(path.join(root, 'binaries')).filter((x) => !['diffusion', 'llama', '.diffusion.lock'].includes(x));
    assert.deepEqual(left, []);
  });

  test('second start reuses the install: no download, no test run', async () => {
    const cpu = serve('cpu', release());
    useManifest([cpu]);
    await start();
    await server.stop();
    srv.resetStats();
    args.clear();
    const events = record(server);
    const info = await start();
    assert.equal(info.status, 'running');
    assert.equal(srv.requests.filter((r) => r.path === cpu.path).length, 0, 'nothing downloaded');
    assert.equal(helpRuns(), 0, 'no validation run');
    assert.deepEqual(phases(events), []);
    assert.ok(logs(events).some((m) => /Using cached validation result/.test(m)));
  });

  test('forceValidation re-runs the tests on the installed build without downloading', async () => {
    const cpu = serve('cpu', release());
    useManifest([cpu]);
    await start();
    await server.stop();
    srv.resetStats();
    args.clear();
    await start({ forceValidation: true });
    assert.equal(srv.statsFor(cpu.path).requests, 0);
    assert.equal(helpRuns(), 1);
  });

  test('an existing genai-electron install is reused with no download and no test', async () => {
    const dir = installDir();
    fs.cpSync(h.FAKE_SD_DIR, dir, { recursive: true });
    const sum = sha256(fs.readFileSync(path.join(dir, 'sd-server')));
    const cpu = serve('cpu', release());
    useManifest([cpu], { version: 'master-782-b290693' });
    fs.writeFileSync(
      path.join(dir, '.validation.json'),
      JSON.stringify({ variant: 'vulkan', checksum: sum, validatedAt: '2026-05-01T10:00:00.000Z', phase1Passed: true, version: 'master-782-b290693' }, null, 2),
    );
    fs.writeFileSync(path.join(dir, '.variant.json'), JSON.stringify({ variant: 'vulkan', platform: PLATFORM }));
    const events = record(server);
    const info = await start();
    assert.equal(info.status, 'running');
    assert.equal(srv.statsFor(cpu.path).requests, 0);
    assert.equal(helpRuns(), 0);
    assert.deepEqual(phases(events), []);
    // A modified program no longer matches its record: it is tested again (and kept, as it works).
    await server.stop();
    fs.appendFileSync(path.join(dir, 'sd-server'), '\n// changed\n');
    await start();
    assert.equal(helpRuns(), 1);
    assert.equal(srv.statsFor(cpu.path).requests, 0);
    const v = JSON.parse(fs.readFileSync(path.join(dir, '.validation.json'), 'utf8'));
    assert.equal(v.variant, 'vulkan');
    assert.equal(v.checksum, sha256(fs.readFileSync(path.join(dir, 'sd-server'))));
  });

  test('a dependency archive lands beside the program and is reused by the next release', async () => {
    const dep = srv.addRawFile(`/releases/dep${++n}/runtime.zip`, A.zip([{ name: 'cudart64_12.dll', data: 'runtime' }]));
    const dependencies = [{ url: dep.url, checksum: dep.sha256, description: 'Runtime libraries' }];
    useManifest([{ ...serve('cpu', release()), dependencies }]);
    const events = record(server);
    await start();
    assert.equal(fs.readFileSync(path.join(installDir(), 'cudart64_12.dll'), 'utf8'), 'runtime');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(installDir(), '.deps.json'), 'utf8')), {
      version: 1,
      dependencies: [{ url: dep.url, checksum: dep.sha256, files: ['cudart64_12.dll'] }],
    });
    const files = events.filter(([e]) => e === 'binary-progress').map(([, x]) => x.file);
    assert.equal(files[0], 'Runtime libraries', 'the dependency comes first');
    assert.ok(files.includes('binary'));
    await server.stop();
    srv.resetStats();
    const next = serve('cpu', release());
    useManifest([{ ...next, dependencies }], { version: 'test-2' });
    await start();
    assert.equal(srv.statsFor(dep.path).requests, 0, 'the installed dependency is reused');
    assert.equal(srv.statsFor(next.path).get, 1);
    assert.equal(fs.readFileSync(path.join(installDir(), 'cudart64_12.dll'), 'utf8'), 'runtime');
    assert.equal(JSON.parse(fs.readFileSync(path.join(installDir(), '.validation.json'), 'utf8')).version, 'test-2');
  });

  test('a new release that cannot be installed leaves the working build in use', async () => {
    useManifest([serve('cpu', release())]);
    await start();
    await server.stop();
    useManifest([{ type: 'cpu', url: `${srv.url}/releases/missing/sd.zip`, checksum: 'a'.repeat(64) }], { version: 'test-2' });
    const events = record(server);
    const info = await start();
    assert.equal(info.status, 'running');
    assert.match(logs(events).join('\n'), /Could not install stable-diffusion\.cpp test-2 .*keeping the installed build/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(installDir(), '.validation.json'), 'utf8')).version, 'test-1');
  });

  test('a build that fails validation falls back to the next variant', async () => {
    const vulkan = serve('vulkan', brokenGpuBuild());
    const cpu = serve('cpu', release('tar.gz'), { ext: '.tar.gz' });
    useManifest([vulkan, cpu]);
    const events = record(server);
    await start();
    const messages = logs(events).join('\n');
    assert.match(messages, /Failed to use vulkan variant: .*vkcreatedevice failed/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(installDir(), '.validation.json'), 'utf8')).variant, 'cpu');
    assert.equal(srv.statsFor(vulkan.path).get, 1);
  });

  test('CUDA builds are tried only with an NVIDIA GPU', async () => {
    const cuda = serve('cuda', brokenGpuBuild());
    const cpu = serve('cpu', release());
    useManifest([cuda, cpu]);
    const events = record(server);
    await start();
    assert.equal(srv.statsFor(cuda.path).requests, 0);
    assert.ok(logs(events).some((m) => /Skipping CUDA variants/.test(m)));
    await server.stop();
    // Same pins on a (simulated) NVIDIA machine: CUDA first, and it fails its validation here.
    const saved = process.env.GENAI_ELECTRON_SIMULATE_SYSTEM;
    process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = h.machine(tmp, 12);
    try {
      root = tempRoot('genai-rs-binroot-');
      g.configure({ userDataPath: root });
      h.kleinRecord(root);
      g.systemInfo.clearCache();
      await start();
      assert.equal(srv.statsFor(cuda.path).get, 1);
    } finally {
      process.env.GENAI_ELECTRON_SIMULATE_SYSTEM = saved;
      g.systemInfo.clearCache();
    }
  });

  test('an interrupted archive download resumes where it stopped', async () => {
    const buf = release();
    const cpu = serve('cpu', buf);
    useManifest([cpu]);
    const half = Math.floor(buf.length / 2);
    srv.fault(cpu.path, { dropAfter: half, times: 1 });
    await start();
    const st = srv.statsFor(cpu.path);
    assert.equal(st.get, 2);
    assert.ok(st.ranges.includes(`bytes=${half}-`), `ranges: ${JSON.stringify(st.ranges)}`);
    assert.equal(JSON.parse(fs.readFileSync(path.join(installDir(), '.validation.json'), 'utf8')).variant, 'cpu');
  });

  test('stop() while the build is being provisioned aborts that start', async () => {
    const cpu = serve('cpu', release());
    useManifest([cpu]);
    srv.fault(cpu.path, { slow: 32 * 1024 });
    const statuses = [];
    server.on('status', (st) => statuses.push(st));
    const stopped = [];
    server.on('stopped', () => stopped.push(1));
    const starting = start();
    await once(server, 'binary-progress');
    await server.stop();
    await assert.rejects(starting, (e) => e instanceof g.ServerError && /aborted by stop/.test(e.message));
    assert.equal(server.getStatus(), 'stopped');
    assert.deepEqual(statuses, ['starting', 'stopping', 'stopped']);
    assert.equal(stopped.length, 1);
  });

  test('the mirror variable replaces the host of every archive URL', async () => {
    const buf = release();
    const f = srv.addRawFile('/mirror/leejet/stable-diffusion.cpp/releases/download/t1/sd-cpu.zip', buf);
    useManifest([{ type: 'cpu', url: 'https://example.invalid/leejet/stable-diffusion.cpp/releases/download/t1/sd-cpu.zip', checksum: f.sha256 }]);
    process.env.GENAI_ELECTRON_BINARY_MIRROR = `${srv.url}/mirror/`;
    await start();
    assert.equal(srv.statsFor(f.path).get, 1);
  });
});

describe('refusals', () => {
  const failsWith = async (code, check = () => {}) => {
    await assert.rejects(start(), (e) => {
      assert.ok(e instanceof g.BinaryError, String(e));
      assert.equal(e.details.code, 'BINARY_ALL_VARIANTS_FAILED');
      for (const v of e.details.variants) assert.equal(v.details.code, code, JSON.stringify(v));
      check(e);
      return true;
    });
    assert.equal(server.getStatus(), 'stopped');
    assert.ok(!fs.existsSync(path.join(installDir(), 'sd-server')), 'nothing installed');
  };

  test('a corrupted archive fails its checksum and installs nothing', async () => {
    const buf = release();
    const cpu = serve('cpu', buf, { checksum: sha256(Buffer.concat([buf, Buffer.from('x')])) });
    useManifest([cpu]);
    await failsWith('BINARY_CHECKSUM_MISMATCH', (e) => assert.match(e.message, /cpu: .*checksum verification failed/));
  });

  test('path traversal and links leaving the folder are refused', async () => {
    const entries = A.dirEntries(h.FAKE_SD_DIR);
    const evil = serve('vulkan', A.zip([...entries, { name: '../../evil.txt', data: 'x' }]));
    const link = serve('cpu', A.tarGz([...entries, { name: 'lib/escape', symlink: '../../../../etc' }]), { ext: '.tar.gz' });
    useManifest([evil, link]);
    await failsWith('BINARY_ARCHIVE_UNSAFE', (e) => {
      assert.match(e.message, /leaves the target folder/);
      assert.match(e.message, /points outside/);
    });
    const found = [];
    const walk = (d) => {
      for (const x of fs.readdirSync(d, { withFileTypes: true })) {
        if (x.name === 'evil.txt' || x.name === 'escape') found.push(path.join(d, x.name));
        if (x.isDirectory()) walk(path.join(d, x.name));
      }
    };
    walk(root);
    assert.deepEqual(found, []);
  });

  test('a zip bomb is refused before it expands', async () => {
    const bomb = serve('cpu', A.zip([...A.dirEntries(h.FAKE_SD_DIR), { name: 'weights.bin', data: Buffer.alloc(48 << 20) }]));
    useManifest([bomb]);
    await failsWith('BINARY_ARCHIVE_UNSAFE', (e) => assert.match(e.message, /zip bomb/));
  });

  test('a build that fails validation everywhere: the error carries the output tail', async () => {
    const bad = serve('cpu', A.zip([{ name: 'sd-server', mode: 0o755, data: '#!/bin/sh\necho "bad build: missing libfoo.so" >&2\nexit 3\n' }, { name: 'sd-cli', mode: 0o755, data: '' }]));
    useManifest([bad]);
    await failsWith('BINARY_VALIDATION_FAILED', (e) => {
      assert.match(e.details.variants[0].details.outputTail, /missing libfoo\.so/);
      assert.match(e.message, /--help failed/);
    });
  });

  test('no build for this platform, and a broken manifest, say what to do', async () => {
    const file = path.join(tmp, `manifest-other-${++n}.json`);
    fs.writeFileSync(file, JSON.stringify({ diffusionCpp: { version: 'v1', binaries: ['sd-server'], variants: { 'win32-arm64': [] } } }));
    process.env.GENAI_ELECTRON_BINARY_MANIFEST = file;
    const statuses = [];
    server.on('status', (st) => statuses.push(st));
    await assert.rejects(start(), (e) => {
      assert.ok(e instanceof g.BinaryError);
      assert.equal(e.details.code, 'BINARY_NO_BUILD');
      assert.match(e.details.suggestion, /binaryPath/);
      return true;
    });
    assert.deepEqual(statuses, ['starting', 'stopped'], 'a failed provisioning ends the start');
    assert.equal(server.getStatus(), 'stopped');
    fs.writeFileSync(file, JSON.stringify({ diffusionCpp: { version: 'v1', binaries: ['sd-server'], variants: { [PLATFORM]: [{ type: 'cpu', url: `${srv.url}/x.zip`, checksum: 'abc' }] } } }));
    await assert.rejects(start(), (e) => {
      assert.ok(e instanceof g.BinaryError);
      assert.match(e.message, new RegExp(`Invalid binary manifest .*diffusionCpp\\.variants\\.${PLATFORM}\\[0\\]\\.checksum must be the archive's SHA-256`));
      return true;
    });
    fs.writeFileSync(file, '{ not json');
    await assert.rejects(start(), /Invalid binary manifest .*key must be a string/);
  });
});

describe('overrides', () => {
  test('binaryPath or GENAI_ELECTRON_SD_BINARY_DIR: that folder is used, nothing downloaded', async () => {
    const cpu = serve('cpu', release());
    useManifest([cpu]);
    const events = record(server);
    await start({ binaryPath: h.FAKE_SD_DIR });
    await server.stop();
    process.env.GENAI_ELECTRON_SD_BINARY_DIR = h.FAKE_SD_DIR;
    try {
      await start();
    } finally {
      delete process.env.GENAI_ELECTRON_SD_BINARY_DIR;
    }
    assert.equal(srv.statsFor(cpu.path).requests, 0);
    assert.equal(helpRuns(), 0);
    assert.ok(!fs.existsSync(path.join(installDir(), 'sd-server')));
    assert.deepEqual(phases(events), []);
    assert.deepEqual(logs(events), [`Using stable-diffusion.cpp binary ${path.join(h.FAKE_SD_DIR, 'sd-server')}`].flatMap((m) => [m, m]));
  });
});

describe('concurrency', () => {
  test('two processes provisioning at once download the archive once and both start', async () => {
    const cpu = serve('cpu', release());
    const manifest = useManifest([cpu]);
    srv.fault(cpu.path, { slow: 64 * 1024 });
    const child = `
      const g = require(${JSON.stringify(path.join(__dirname, '..'))});
      g.configure({ userDataPath: ${JSON.stringify(root)} });
      const phases = [];
      g.diffusionServer.on('binary-progress', (e) => phases.push(e.phase));
      g.diffusionServer.start({ modelId: 'flux-2-klein', port: 'auto' }).then(
        async () => { await g.diffusionServer.stop(); console.log(JSON.stringify({ ok: true, downloaded: phases.includes('downloading') })); process.exit(0); },
        (e) => { console.log(JSON.stringify({ ok: false, message: e.message })); process.exit(1); });`;
    const run = () =>
      new Promise((resolve) => {
        const p = spawn(process.execPath, ['-e', child], {
          env: { ...process.env, GENAI_ELECTRON_BINARY_MANIFEST: manifest },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', () => resolve(JSON.parse(out.trim().split('\n').pop())));
      });
    const results = await Promise.all([run(), run()]);
    assert.deepEqual(results.map((r) => r.ok), [true, true], JSON.stringify(results));
    assert.equal(results.filter((r) => r.downloaded).length, 1);
    assert.equal(srv.statsFor(cpu.path).get, 1);
  });
});

describe('llama.cpp on llamaServer.start()', () => {
  let llama;
  afterEach(async () => {
    if (llama) await llama.stop();
    llama = undefined;
    delete process.env.FAKE_LLAMA_ARGS_LOG;
  });

  test('first start installs the pinned build after canRunModel, validated on the model; then reused', async () => {
    delete process.env.GENAI_ELECTRON_LLAMA_BINARY_DIR;
    const rec = hl.llmRecord(root);
    const buf = A.tarGz(A.dirEntries(hl.FAKE_LLAMA_DIR));
    const f = srv.addRawFile(`/releases/t${++n}/llama-bin.tar.gz`, buf);
    const file = path.join(tmp, `manifest-${++n}.json`);
    fs.writeFileSync(
      file,
      JSON.stringify({ llamaServer: { version: 'llama-test-1', binaries: ['llama-server'], variants: { [PLATFORM]: [{ type: 'cpu', url: f.url, checksum: f.sha256 }] } } }),
    );
    process.env.GENAI_ELECTRON_BINARY_MANIFEST = file;
    const argsFile = path.join(tmp, `llama-args-${n}.jsonl`);
    process.env.FAKE_LLAMA_ARGS_LOG = argsFile;
    llama = new g.LlamaServerManager();
    const events = record(llama);
    const info = await llama.start({ modelId: rec.id, port: 'auto' });
    assert.equal(info.status, 'running');
    assert.equal(srv.statsFor(f.path).get, 1);
    assert.deepEqual(phases(events), ['downloading', 'verifying', 'extracting', 'finalizing', 'testing', 'installing']);
    assert.equal(events[events.length - 1][0], 'started');
    for (const want of [/Trying cpu variant/, /Phase 1: ✓/, /Phase 2: ✓/]) {
      assert.ok(logs(events).some((m) => want.test(m)), `${want} in ${logs(events).join(' | ')}`);
    }
    const dir = path.join(root, 'binaries', 'llama');
    const v = JSON.parse(fs.readFileSync(path.join(dir, '.validation.json'), 'utf8'));
    assert.deepEqual([v.variant, v.version, v.phase2Passed], ['cpu', 'llama-test-1', true]);
    // Phase 2 loaded this model on the installed program; the server then ran from the install.
    const runs = hl.loggedArgs(argsFile);
    assert.ok(runs.some((a) => a[0] === '-m' && a[1] === rec.path && a.includes('-c') && a.includes('512')), JSON.stringify(runs));
    assert.equal(info.pid, llama.getPid());
    await llama.stop();
    const again = record(llama);
    await llama.start({ modelId: rec.id, port: 'auto' });
    assert.equal(srv.statsFor(f.path).get, 1, 'no second download');
    assert.deepEqual(phases(again), [], 'no second validation');
  });
});

describe('exports', () => {
  test('BINARY_VERSIONS and getBinaryPath are genai-electron 0.26\'s', async () => {
    const defaults = path.join(__dirname, '..', 'node_modules', 'genai-electron', 'dist', 'config', 'defaults.js');
    const ref = await import(pathToFileURL(defaults).href);
    assert.deepEqual(JSON.parse(JSON.stringify(g.BINARY_VERSIONS)), JSON.parse(JSON.stringify(ref.BINARY_VERSIONS)));
    assert.ok(Object.isFrozen(g.BINARY_VERSIONS.diffusionCpp.variants));
    const exe = process.platform === 'win32' ? '.exe' : '';
    assert.equal(g.getBinaryPath('diffusion', 'sd-server'), path.join(root, 'binaries', 'diffusion', `sd-server${exe}`));
    assert.equal(g.getBinaryPath('llama', 'llama-server'), path.join(root, 'binaries', 'llama', `llama-server${exe}`));
    assert.throws(() => g.getBinaryPath('llm', 'x'), TypeError);
  });
});
