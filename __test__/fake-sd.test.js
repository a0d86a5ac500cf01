'use strict';
// Tests of the fake stable-diffusion.cpp programs in __test__/fixtures/fake-sd.
// Run: node --test __test__/fake-sd.test.js

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const zlib = require('node:zlib');

const FAKE = path.join(__dirname, 'fixtures', 'fake-sd');
const SD_CLI = path.join(FAKE, 'sd-cli');
const SD_SERVER = path.join(FAKE, 'sd-server');
const MF = require('./fixtures/fake-sd/lib/model-files');
// Real captures (byte-for-byte copies kept in the repository): the fake is compared with these,
// never with its own texts.
const CAPTURES = path.join(__dirname, 'fixtures', 'sdcpp-output');
const HELP = specFile('help.out');
const SRVHELP = specFile('srvhelp.out');

const STEP_RE = /\|([=> ]{50})\| (\d+)\/(\d+) - ([0-9.]+)(s\/it|it\/s)/;
const LOAD_RE = /\|([# ]{50})\| (\d+)\/(\d+) - ([0-9.]+)(B\/s|KB\/s|MB\/s|GB\/s)/;

let tmp;
let M; // model paths

// The model set is headers only; the fake generates from such files only when told so.
process.env.FAKE_SD_HEADER_ONLY = '1';

function run(prog, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(prog, args, {
      cwd: opts.cwd || tmp,
      env: { ...process.env, ...(opts.env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (opts.onStdout) opts.onStdout(stdout, child);
    });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout || 15000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, child });
    });
  });
}

/** A real capture; a missing one throws (ENOENT) so the comparison can never pass silently. */
function specFile(name) {
  return fs.readFileSync(path.join(CAPTURES, name), 'utf8');
}

function checkPng(file, width, height) {
  const buf = fs.readFileSync(file);
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a');
  let off = 8;
  const idat = [];
  let w;
  let h;
  let sawEnd = false;
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const crc = buf.readUInt32BE(off + 8 + len);
    assert.equal(crc, zlib.crc32 ? zlib.crc32(buf.subarray(off + 4, off + 8 + len)) : crc, `bad CRC in ${type}`);
    if (type === 'IHDR') {
      w = buf.readUInt32BE(off + 8);
      h = buf.readUInt32BE(off + 12);
    }
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    if (type === 'IEND') sawEnd = true;
    off += 12 + len;
  }
  assert.ok(sawEnd, 'IEND missing');
  assert.equal(w, width);
  assert.equal(h, height);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  assert.equal(raw.length, h * (1 + 3 * w));
  return buf;
}

// Lines as a terminal would finally show them: \r updates collapsed, \033[K removed.
function finalLines(s) {
  return s.split('\n').map((l) => {
    const parts = l.split('\r');
    return parts[parts.length - 1].replace(/\x1b\[K/g, '');
  });
}

// Structural form of a log: paths, numbers, bars and units normalised.
function shape(s, paths) {
  let t = s;
  for (const [from, to] of paths) t = t.split(from).join(to);
  return finalLines(t)
    .map((l) => l.replace(/\|[#=> ]{50}\|/g, '|BAR|').replace(/(K|M|G)?B\/s|s\/it|it\/s/g, 'RATE').replace(/\d+(\.\d+)?/g, '#').replace(/ +/g, ' '));
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function request(port, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: { ...(data ? { 'Content-Length': data.length } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch (_) { /* not json */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/** Start sd-server; resolves once `listening on:` is printed and HTTP answers. */
async function startServer(args, env = {}) {
  const port = await freePort();
  const state = { stdout: '', stderr: '', exit: null };
  const child = spawn(SD_SERVER, [...args, '--listen-port', String(port)], { cwd: tmp, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => { state.stdout += d; });
  child.stderr.on('data', (d) => { state.stderr += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => { state.exit = { code, signal }; resolve(state.exit); }));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (state.exit) throw new Error(`sd-server exited: ${JSON.stringify(state.exit)}\n${state.stdout}\n${state.stderr}`);
    if (state.stdout.includes('listening on:')) {
      try {
        await request(port, 'GET', '/');
        break;
      } catch (_) { /* not bound yet */ }
    }
    if (Date.now() > deadline) throw new Error('sd-server did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, port, state, exited };
}

async function pollJob(port, id, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request(port, 'GET', `/sdcpp/v1/jobs/${id}`);
    if (r.status !== 200 || ['completed', 'failed', 'cancelled'].includes(r.json.status)) return r;
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish: ${r.text}`);
    await new Promise((res) => setTimeout(res, 15));
  }
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-sd-test-'));
  M = MF.createModelSet(path.join(tmp, 'models'));
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('sd-cli argument handling (real texts)', { concurrency: true }, () => {
  test('--help and --version', async () => {
    const h = await run(SD_CLI, ['--help']);
    assert.equal(h.code, 0);
    assert.equal(h.stdout, HELP);
    const v = await run(SD_CLI, ['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout, 'stable-diffusion.cpp version master-827-97d2990, commit 97d2990\n');
    // --version is only recognised as argv[1]
    const v2 = await run(SD_CLI, ['-m', 'x', '--version']);
    assert.equal(v2.code, 1);
    assert.equal(v2.stderr, '[ERROR] common.cpp:325  - error: unknown argument: --version\n');
  });

  test('unknown flag: error on stderr, usage on stdout, exit 1', async () => {
    const r = await run(SD_CLI, ['--llm-vision', 'v.gguf']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '[ERROR] common.cpp:325  - error: unknown argument: --llm-vision\n');
    assert.equal(r.stdout, HELP);
    assert.equal(r.stderr, specFile('unknown.err'));
    // no --flag=value form, no prefixes
    assert.equal((await run(SD_CLI, ['--steps=4'])).stderr, '[ERROR] common.cpp:325  - error: unknown argument: --steps=4\n');
  });

  test('missing value', async () => {
    const r = await run(SD_CLI, ['-m', 'x.safetensors', '--steps']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '[ERROR] common.cpp:320  - error: invalid parameter for argument: --steps\n');
    assert.equal(r.stdout, HELP);
  });

  test('bad numbers abort with an uncaught C++ exception (SIGABRT, 134)', async () => {
    const cases = [
      [['--steps', 'abc'], "terminate called after throwing an instance of 'std::invalid_argument'\n  what():  stoi\n", 'badint.err'],
      [['--cfg-scale', 'abc'], "terminate called after throwing an instance of 'std::invalid_argument'\n  what():  stof\n", 'badfloat.err'],
      [['--steps', '99999999999'], "terminate called after throwing an instance of 'std::out_of_range'\n  what():  stoi\n", 'oor.err'],
      [['-s', 'x'], "terminate called after throwing an instance of 'std::invalid_argument'\n  what():  stoll\n", null],
    ];
    for (const [args, err, spec] of cases) {
      const r = await run(SD_CLI, ['-m', 'x', ...args]);
      assert.equal(r.signal, 'SIGABRT', args.join(' '));
      assert.equal(r.stderr, err);
      assert.equal(r.stdout, '');
      if (spec) assert.equal(r.stderr, specFile(spec));
    }
    // stoi semantics: a numeric prefix is accepted
    const ok = await run(SD_CLI, ['--steps', '2abc', '-M', 'foo']);
    assert.equal(ok.code, 1);
    assert.match(ok.stderr, /invalid mode foo/);
  });

  test('bad enum values, bad mode, bad vae format, no model', async () => {
    const s = await run(SD_CLI, ['-m', 'x', '--sampling-method', 'foo']);
    assert.equal(s.code, 1);
    assert.equal(s.stderr, '[ERROR] common.cpp:1258 - error: invalid sample method foo\n[ERROR] common.cpp:320  - error: invalid parameter for argument: --sampling-method\n');
    assert.equal(s.stdout, HELP);
    const m = await run(SD_CLI, ['-M', 'foo']);
    assert.equal(m.code, 1);
    assert.equal(m.stderr, '[ERROR] main.cpp:157  - error: invalid mode foo, must be one of [img_gen, adetailer, vid_gen, convert, upscale, metadata]\n');
    assert.equal(m.stdout, '');
    const v = await run(SD_CLI, ['-m', 'x', '--vae-format', 'foo']);
    assert.equal(v.code, 1);
    assert.equal(v.stderr, "[ERROR] common.cpp:754  - error: vae_format must be 'auto', 'flux', 'sd3', 'flux2', or 'wan'\n");
    assert.equal(v.stdout, HELP);
    const n = await run(SD_CLI, ['-p', 'a cat']);
    assert.equal(n.code, 1);
    assert.equal(n.stderr, '[ERROR] common.cpp:742  - error: the following arguments are required: model_path/diffusion_model\n');
    assert.equal(n.stdout, HELP);
    for (const [spec, r] of [['badsampler.err', s], ['badmode.err', m], ['vf.err', v], ['nomodel.err', n]]) {
      assert.equal(r.stderr, specFile(spec), spec);
    }
  });

  test('missing component files (flux2 / qwen2vl captures, byte for byte)', async () => {
    const r = await run(SD_CLI, ['--diffusion-model', 'x.gguf', '--llm', 'y.gguf', '--vae', 'z.safetensors', '--offload-to-cpu',
      '--diffusion-fa', '-p', 'test', '--cfg-scale', '1', '--steps', '4', '-W', '768', '-H', '768', '--sampling-method', 'euler']);
    assert.equal(r.code, 1);
    const out = [
      "[INFO ] stable-diffusion.cpp:720  - loading diffusion model from 'x.gguf'",
      '[WARN ] model_loader.cpp:254  - file x.gguf not found',
      "[WARN ] stable-diffusion.cpp:722  - loading diffusion model from 'x.gguf' failed",
      "[INFO ] stable-diffusion.cpp:777  - loading llm from 'y.gguf'",
      '[WARN ] model_loader.cpp:254  - file y.gguf not found',
      "[WARN ] stable-diffusion.cpp:779  - loading llm from 'y.gguf' failed",
      "[INFO ] stable-diffusion.cpp:791  - loading vae from 'z.safetensors'",
      '[WARN ] model_loader.cpp:254  - file z.safetensors not found',
      "[WARN ] stable-diffusion.cpp:793  - loading vae from 'z.safetensors' failed",
      '[INFO ] main.cpp:910  - new_sd_ctx_t failed',
      '',
    ].join('\n');
    assert.equal(r.stdout, out);
    assert.equal(r.stderr, "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: ''\n");
    assert.equal(r.stdout, specFile('flux2.out'));
    const q = await run(SD_CLI, ['--diffusion-model', 'x.gguf', '--qwen2vl', 'y.gguf', '--qwen2vl_vision', 'v.gguf', '-p', 'test']);
    assert.equal(q.stdout, specFile('qwen2vl.out'));
    assert.match(q.stdout, /loading llm vision from 'v\.gguf'/);
  });

  test('files that are not models (garb capture)', async () => {
    const r = await run(SD_CLI, ['--diffusion-model', M.garbage, '--llm', M.garbage, '-p', 'x']);
    assert.equal(r.code, 1);
    assert.ok(r.stdout.includes(`[WARN ] model_loader.cpp:252  - unknown format ${M.garbage}\n`));
    assert.ok(r.stdout.includes(`[WARN ] stable-diffusion.cpp:722  - loading diffusion model from '${M.garbage}' failed\n`));
    assert.ok(r.stdout.endsWith('[INFO ] main.cpp:910  - new_sd_ctx_t failed\n'));
    assert.equal(r.stderr, "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: ''\n");
  });

  test('FAKE_SD_LOG_ARGS records the exact argv', async () => {
    const log = path.join(tmp, 'args.jsonl');
    const args = ['--diffusion-model', 'x y.gguf', '-p', 'a "quoted" prompt', '--steps', '4'];
    await run(SD_CLI, args, { env: { FAKE_SD_LOG_ARGS: log } });
    await run(SD_CLI, ['--version'], { env: { FAKE_SD_LOG_ARGS: log } });
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [args, ['--version']]);
  });
});

describe('sd-cli generation', { concurrency: true }, () => {
  test('gen1: same log shape as the real run, valid PNG, save line', async () => {
    const out = path.join(tmp, 'gen', 'gen1.png');
    const r = await run(SD_CLI, ['-m', M.sdxs, '-p', 'a cat', '--steps', '3', '--cfg-scale', '1', '-W', '128', '-H', '128', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    checkPng(out, 128, 128);
    assert.ok(r.stdout.includes(`[INFO ] main.cpp:490  - save result image 0 to '${out}' (success)\n[INFO ] main.cpp:562  - 1/1 images saved\n`));
    const a = shape(r.stdout, [[M.sdxs, 'MODEL'], [out, 'OUT']]);
    const b = shape(specFile('gen1.out'), [['/models/sdxs_zero.safetensors', 'MODEL'], ['/out/gen1.png', 'OUT']]);
    assert.deepEqual(a, b);
    // metadata mode reads back the parameters chunk
    const meta = await run(SD_CLI, ['-M', 'metadata', '--image', out]);
    assert.equal(meta.code, 0);
    assert.match(meta.stdout, /^File: .*\nFormat: PNG\n\nChunk: tEXt\n {2}crc: \d+\n {2}critical: false\n {2}data:\n {4}keyword: parameters\n {4}text: a cat\nSteps: 3, CFG scale: 1\.000000/);
  });

  test('a header-only file (no tensor data) fails when its weights load, as in the real loader', async () => {
    const args = (m, out) => ['-m', m, '-p', 'x', '--steps', '1', '-W', '64', '-H', '64', '-o', path.join(tmp, out)];
    const r = await run(SD_CLI, args(M.sdxs, 'h.png'), { env: { FAKE_SD_HEADER_ONLY: '' } });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`read tensor data failed: '${M.sdxs}'`), r.stderr);
    assert.equal(fs.existsSync(path.join(tmp, 'h.png')), false);
    const full = MF.writeSdxs(path.join(tmp, 'models', 'sdxs-data.safetensors'), { data: 'sparse' });
    const ok = await run(SD_CLI, args(full, 'd.png'), { env: { FAKE_SD_HEADER_ONLY: '' } });
    assert.equal(ok.code, 0, ok.stderr);
    checkPng(path.join(tmp, 'd.png'), 64, 64);
  });

  test('progress bars: carriage-return updates on stdout that parse', async () => {
    const r = await run(SD_CLI, ['-m', M.sdxs, '-p', 'x', '--steps', '5', '-W', '64', '-H', '64', '-o', path.join(tmp, 'p.png')]);
    assert.equal(r.code, 0);
    const updates = r.stdout.split(/[\r\n]/).filter((s) => STEP_RE.test(s)).map((s) => STEP_RE.exec(s));
    assert.deepEqual(updates.map((m) => +m[2]), [1, 2, 3, 4, 5]);
    assert.ok(updates.every((m) => m[3] === '5'));
    assert.equal(updates[0][1], `${'='.repeat(10)}>${' '.repeat(39)}`);
    assert.equal(updates[4][1], '='.repeat(50));
    // a newline only after the last update; every update ends with ESC[K
    assert.match(r.stdout, /\r {2}\|={50}\| 5\/5 - [0-9.]+it\/s\x1b\[K\n/);
    assert.doesNotMatch(r.stdout, /1\/5 - [0-9.]+it\/s\x1b\[K\n/);
    const loads = r.stdout.split(/[\r\n]/).filter((s) => LOAD_RE.test(s));
    assert.ok(loads.length >= 3, 'tensor-loading bars');
    // s/it formatting when a step takes longer than a second (scaled time)
    const slow = await run(SD_CLI, ['-m', M.sdxs, '-p', 'x', '--steps', '2', '-W', '64', '-H', '64', '-o', path.join(tmp, 'p2.png')],
      { env: { FAKE_SD_TIME_SCALE: '1000' } });
    assert.match(slow.stdout, /\| 2\/2 - \d+\.\d\ds\/it\x1b\[K\n/);
  });

  test('batch and odd -o values (batch, e1, e2, e3)', async () => {
    const d = path.join(tmp, 'ext');
    const cases = [
      [['-b', '2', '-s', '7', '-o', path.join(d, 'batch', 'out.png')], ['batch/out_0.png', 'batch/out_1.png'], 562, [7, 8]],
      [['-o', path.join(d, 'noext')], ['noext.png'], 562, [42]],
      [['-o', path.join(d, 'img.bmp')], ['img.bmp.png'], 562, [42]],
      [['-b', '2', '-o', path.join(d, 'seq_%03d.png')], ['seq_000.png', 'seq_001.png'], 523, [42, 43]],
    ];
    for (const [args, files, line, seeds] of cases) {
      const r = await run(SD_CLI, ['-m', M.sdxs, '-p', 'x', '--steps', '1', '-W', '64', '-H', '64', ...args]);
      assert.equal(r.code, 0, r.stderr);
      files.forEach((f, i) => {
        const p = path.join(d, f);
        checkPng(p, 64, 64);
        assert.ok(r.stdout.includes(`save result image ${i} to '${p}' (success)`), r.stdout);
      });
      assert.ok(r.stdout.includes(`[INFO ] main.cpp:${line}  - ${files.length}/${files.length} images saved\n`));
      for (const [i, s] of seeds.entries()) assert.ok(r.stdout.includes(`generating image: ${i + 1}/${seeds.length} - seed ${s}\n`));
    }
  });

  test('output that cannot be written (sysfail, unwritable) and missing directories (nodir)', async () => {
    const base = ['-m', M.sdxs, '-p', 'x', '--steps', '1', '-W', '64', '-H', '64'];
    const sys = await run(SD_CLI, [...base, '-o', '/sys/out.png']);
    assert.equal(sys.code, 1);
    assert.equal(sys.stderr, '');
    assert.ok(sys.stdout.endsWith("[INFO ] main.cpp:490  - save result image 0 to '/sys/out.png' (failure)\n[INFO ] main.cpp:562  - 0/1 images saved\n"));
    const un = await run(SD_CLI, [...base, '-o', '/proc/nope/out.png']);
    assert.equal(un.code, 1);
    assert.equal(un.stderr, "[ERROR] main.cpp:452  - failed to create directory '/proc/nope': No such file or directory\n");
    assert.match(un.stdout, /generate_image completed in [0-9.]+s\n$/);
    const nd = path.join(tmp, 'nodir', 'a', 'b', 'out.png');
    const ok = await run(SD_CLI, [...base, '-o', nd]);
    assert.equal(ok.code, 0);
    checkPng(nd, 64, 64);
  });

  test('size alignment warning and -W/-H honoured', async () => {
    const out = path.join(tmp, 'align.png');
    const r = await run(SD_CLI, ['-m', M.sd15, '-p', 'x', '--steps', '1', '-W', '100', '-H', '72', '-o', out]);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.includes('[WARN ] stable-diffusion.cpp:4936 - align generation request up 100x72 to 104x72 (multiple=8)\n'));
    assert.ok(r.stdout.includes('Version: SD 1.x \n'));
    checkPng(out, 104, 72);
  });
});

describe('model detection and validation', { concurrency: true }, () => {
  const tail = () => ['-p', 'a cat', '-W', '64', '-H', '64', '--steps', '1', '--cfg-scale', '1', '--seed', '42'];

  test('SDXL split without the hint fails like the real one (a1-a3)', async () => {
    for (const unet of [M.sdxlUnet, M.sdxlUnetNoPrefix, M.sdxlUnetDiffusers]) {
      const out = path.join(tmp, `a-${path.basename(unet)}.png`);
      const r = await run(SD_CLI, ['--diffusion-model', unet, '--clip_l', M.clipL, '--clip_g', M.clipG, '--vae', M.sdxlVae, ...tail(), '-o', out]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: ''\n");
      assert.ok(r.stdout.endsWith('[INFO ] main.cpp:910  - new_sd_ctx_t failed\n'));
      assert.ok(!fs.existsSync(out));
    }
  });

  test('SDXL split with the hint file (b4, b5, b7) or -m text encoders (c1) works', async () => {
    const layouts = [
      ['-m', M.sdxlHint, '--diffusion-model', M.sdxlUnet, '--clip_l', M.clipL, '--clip_g', M.clipG, '--vae', M.sdxlVae],
      ['-m', M.sdxlHint, '--diffusion-model', M.sdxlUnetNoPrefix, '--clip_l', M.clipL, '--clip_g', M.clipG, '--vae', M.sdxlVae],
      ['-m', M.sdxlHint, '--diffusion-model', M.sdxlUnet, '--clip_l', M.clipL, '--clip_g', M.clipG, '--vae', M.sdxlVaeDiffusers],
      ['--diffusion-model', M.sdxlUnet, '--clip_l', M.clipL, '--clip_g', M.clipGHint, '--vae', M.sdxlVae],
      ['-m', M.sdxlTe, '--diffusion-model', M.sdxlUnet, '--vae', M.sdxlVae],
      ['-m', M.sdxlCheckpoint],
      ['-m', MF.writeSdxlTextEncoders(path.join(tmp, 'te_canon.safetensors'), { naming: 'canonical' }), '--diffusion-model', M.sdxlUnet, '--vae', M.sdxlVae],
      ['-m', MF.writeSdxlTextEncoders(path.join(tmp, 'te12.safetensors'), { naming: 'te12' }), '--diffusion-model', M.sdxlUnet, '--vae', M.sdxlVae],
      ['-m', MF.writeSdxlDiffusersFolder(path.join(tmp, 'diffusers-d3')), '--clip_g', path.join(tmp, 'diffusers-d3/text_encoder_2/model.safetensors'),
        '--vae', path.join(tmp, 'diffusers-d3/vae/diffusion_pytorch_model.safetensors')],
    ];
    for (const [i, l] of layouts.entries()) {
      const out = path.join(tmp, `b${i}.png`);
      const r = await run(SD_CLI, [...l, ...tail(), '-o', out]);
      assert.equal(r.code, 0, `${l.join(' ')}\n${r.stderr}`);
      assert.ok(r.stdout.includes('[INFO ] stable-diffusion.cpp:908  - Version: SDXL \n'));
      checkPng(out, 64, 64);
    }
  });

  test('SDXL: diffusers UNet with the hint (b6) and SGM-named single encoders (b1) fail', async () => {
    const b6 = await run(SD_CLI, ['-m', M.sdxlHint, '--diffusion-model', M.sdxlUnetDiffusers, '--clip_l', M.clipL, '--clip_g', M.clipG, '--vae', M.sdxlVaeDiffusers, ...tail()]);
    assert.equal(b6.code, 1);
    assert.equal(b6.stderr, `[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '${M.sdxlHint}'\n`);
    const b1 = await run(SD_CLI, ['--diffusion-model', M.sdxlUnet, '--clip_l', M.clipLSgm, '--clip_g', M.clipGSgm, '--vae', M.sdxlVae, ...tail()]);
    assert.equal(b1.code, 1);
    assert.ok(b1.stdout.includes('Version: SDXL \n'));
    assert.match(b1.stderr, /Conditioner model tensor 'cond_stage_model\.1\.transformer\.text_model\.embeddings\.token_embedding\.weight' not in model metadata/);
    assert.ok(b1.stderr.endsWith('[ERROR] stable-diffusion.cpp:1693 - model metadata validation failed\n'));
    // d1: a diffusers folder alone is misdetected as SD 1.x and fails validation
    const d1 = await run(SD_CLI, ['-m', MF.writeSdxlDiffusersFolder(path.join(tmp, 'diffusers-d1')), ...tail()]);
    assert.equal(d1.code, 1);
    assert.ok(d1.stdout.includes('using diffusers format\n'));
    assert.ok(d1.stdout.includes('Version: SD 1.x \n'));
    assert.match(d1.stderr, /model metadata validation failed\n$/);
  });

  test('wrong TAE (badtae capture) and wrong VAE for Flux 2', async () => {
    const t = await run(SD_CLI, ['-m', M.sdxs, '--taesd', M.badTaesd, ...tail()]);
    assert.equal(t.code, 1);
    assert.equal(t.stderr, "[ERROR] model_manager.cpp:649  - VAE tensor 'tae.decoder.layers.0.weight' has wrong shape in model metadata: got [3, 3, 16, 64], expected [3, 3, 4, 64]\n[ERROR] stable-diffusion.cpp:1693 - model metadata validation failed\n");
    assert.equal(t.stderr, specFile('badtae.err'));
    assert.ok(t.stdout.includes(`[INFO ] stable-diffusion.cpp:799  - loading tae from '${M.badTaesd}'\n`));
    assert.ok(t.stdout.endsWith('[INFO ] stable-diffusion.cpp:1502 - using TAE for encoding / decoding\n[INFO ] main.cpp:910  - new_sd_ctx_t failed\n'));

    const v = await run(SD_CLI, ['--diffusion-model', M.kleinDit, '--llm', M.qwen3_4b, '--vae', M.flux1Vae, ...tail()]);
    assert.equal(v.code, 1);
    const lines = v.stderr.trim().split('\n');
    assert.equal(lines.filter((l) => l.includes('has wrong shape in model metadata')).length, 3);
    assert.equal(lines.filter((l) => /VAE tensor 'first_stage_model\.(post_)?quant_conv\.(weight|bias)' not in model metadata/.test(l)).length, 4);
    assert.ok(lines.includes("[ERROR] model_manager.cpp:649  - VAE tensor 'first_stage_model.decoder.conv_in.weight' has wrong shape in model metadata: got [3, 3, 16, 512], expected [3, 3, 32, 512]"));
    assert.equal(lines[lines.length - 1], '[ERROR] stable-diffusion.cpp:1693 - model metadata validation failed');
    assert.doesNotMatch(v.stdout, /generate_image/);
  });

  test('Flux 2 Klein: works with Qwen3-4B, aborts mid-run with Qwen3-8B', async () => {
    const good = path.join(tmp, 'klein.png');
    const ok = await run(SD_CLI, ['--diffusion-model', M.kleinDit, '--llm', M.qwen3_4b, '--vae', M.flux2Vae, '--offload-to-cpu', '--diffusion-fa', ...tail(), '--steps', '4', '-o', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.stdout.includes('Version: Flux.2 klein \n'));
    assert.ok(ok.stdout.includes('vae decoder: ch = 128\n'));
    assert.ok(ok.stdout.includes('sampling using Euler method\n'));
    assert.ok(ok.stdout.includes('load ' + M.kleinDit + ' using gguf format\n'));
    checkPng(good, 64, 64);

    const bad = path.join(tmp, 'klein8b.png');
    const r = await run(SD_CLI, ['--diffusion-model', M.kleinDit, '--llm', M.qwen3_8b, '--vae', M.flux2Vae, ...tail(), '--steps', '4', '-o', bad]);
    assert.equal(r.signal, 'SIGABRT');
    assert.equal(r.stderr, 'ggml.c:3286: GGML_ASSERT(ggml_can_mul_mat(a, b)) failed\n');
    assert.ok(r.stdout.includes('generating image: 1/1 - seed 42\n'));
    assert.ok(!STEP_RE.test(r.stdout));
    assert.ok(!fs.existsSync(bad));
  });

  test('model-file builders write readable headers', () => {
    const g = MF.readModelHeader(M.qwen3_8b);
    assert.equal(g.format, 'gguf');
    assert.equal(g.kv['qwen3.embedding_length'], 4096);
    assert.deepEqual(g.tensors.find((t) => t.name === 'token_embd.weight').ne, [4096, 151936]);
    const k = MF.readModelHeader(M.kleinDit);
    assert.deepEqual(k.tensors.find((t) => t.name === 'txt_in.weight').ne, [7680, 3072]);
    assert.equal(k.tensors.filter((t) => /^single_blocks\.\d+\.linear1\.weight$/.test(t.name)).length, 20);
    const v = MF.readModelHeader(M.flux2Vae);
    assert.deepEqual(v.tensors.find((t) => t.name === 'decoder.conv_in.weight').ne, [3, 3, 32, 512]);
    assert.equal(fs.statSync(M.sdxlHint).size, 98);
    for (const p of Object.values(M)) assert.ok(fs.statSync(p).size < 64 * 1024, p);
  });
});

describe('sd-server', { concurrency: true }, () => {
  test('serves jobs end to end and keeps the model loaded', async () => {
    const s = await startServer(['-m', M.sdxs, '-W', '64', '-H', '64', '--steps', '2']);
    try {
      assert.match(s.state.stdout, /\[INFO \] main\.cpp:148 {2}- listening on: http:\/\/127\.0\.0\.1:\d+\n$/);
      const root = await request(s.port, 'GET', '/', undefined, { Origin: 'http://example.test' });
      assert.equal(root.status, 200);
      assert.equal(root.text, 'Stable Diffusion Server is running');
      assert.equal(root.headers['access-control-allow-origin'], 'http://example.test');
      assert.deepEqual((await request(s.port, 'GET', '/v1/models')).json, { data: [{ id: 'sd-cpp-local', object: 'model', owned_by: 'local' }] });
      assert.equal((await request(s.port, 'GET', '/health')).status, 404);
      assert.equal((await request(s.port, 'OPTIONS', '/v1/models')).status, 204);
      const caps = (await request(s.port, 'GET', '/sdcpp/v1/capabilities')).json;
      assert.equal(caps.limits.max_batch_count, 8);
      assert.equal(caps.limits.max_queue_size, 64);

      for (let i = 0; i < 3; i++) {
        const sub = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: `job ${i}`, seed: 5 + i, sample_params: { sample_steps: 3 } });
        assert.equal(sub.status, 202);
        assert.match(sub.json.id, /^job_[0-9a-f]+_[0-9a-f]{8}$/);
        assert.equal(sub.json.kind, 'img_gen');
        assert.equal(sub.json.poll_url, `/sdcpp/v1/jobs/${sub.json.id}`);
        const done = await pollJob(s.port, sub.json.id);
        assert.equal(done.json.status, 'completed', done.text);
        assert.equal(done.json.error, null);
        assert.equal(done.json.queue_position, 0);
        assert.equal(done.json.result.output_format, 'png');
        const png = Buffer.from(done.json.result.images[0].b64_json, 'base64');
        const f = path.join(tmp, `srv-${i}.png`);
        fs.writeFileSync(f, png);
        checkPng(f, 64, 64);
      }
      const openai = await request(s.port, 'POST', '/v1/images/generations', { prompt: 'x', size: '128x64', n: 2 });
      assert.equal(openai.status, 200);
      assert.equal(openai.json.data.length, 2);
      assert.equal(openai.json.output_format, 'png');
      const a1111 = await request(s.port, 'POST', '/sdapi/v1/txt2img', { prompt: 'x', steps: 1, width: 64, height: 64, seed: 3, batch_size: 2 });
      assert.equal(a1111.status, 200);
      assert.equal(a1111.json.images.length, 2);
      assert.deepEqual(JSON.parse(a1111.json.info).all_seeds, [3, 4]);

      assert.deepEqual((await request(s.port, 'POST', '/v1/images/generations', { n: 1 })).json, { error: 'prompt required' });
      const bad = await request(s.port, 'POST', '/v1/images/generations', '{bad');
      assert.equal(bad.status, 500);
      assert.equal(bad.json.error, 'server_error');
      assert.match(bad.json.message, /^\[json\.exception\.parse_error\.101\]/);
      assert.equal((await request(s.port, 'POST', '/sdcpp/v1/img_gen', '{bad')).status, 400);
      const nf = await request(s.port, 'GET', '/sdcpp/v1/jobs/job_nope_00000000');
      assert.equal(nf.status, 404);
      assert.deepEqual(nf.json, { error: 'job not found' });

      // 3 async + 1 OpenAI + 1 A1111 generations, weights loaded lazily by the first one only
      const lines = finalLines(s.state.stdout);
      assert.equal(lines.filter((l) => l.includes('generate_image completed in')).length, 5);
      assert.equal(lines.filter((l) => l.includes('loading tensors completed')).length, 3);
      assert.equal(s.state.stderr, '');
    } finally {
      s.child.kill('SIGTERM');
    }
    const ex = await s.exited;
    assert.equal(ex.signal, 'SIGTERM');
  });

  test('img_gen parses like the real route: wrong types and unknown names keep the defaults', async () => {
    // As the real sd-server answers (npm run test:real compares the two): a field of the wrong
    // JSON type, an unknown sampler or scheduler, batch_count or sample_steps <= 0 are ignored
    // (202, request defaults); a negative cfg scale is refused; batch_count has no upper bound.
    const s = await startServer(['-m', M.sdxs, '-W', '64', '-H', '64', '--steps', '1', '-s', '42']);
    try {
      const cases = [
        [{ prompt: 'x', batch_count: 0 }, 202],
        [{ prompt: 'x', sample_params: { sample_steps: 0 } }, 202],
        [{ prompt: 'x', sample_params: { guidance: { txt_cfg: -1 } } }, 400],
        [{ prompt: 'x', batch_count: 9 }, 202],
        [{ prompt: 'x', sample_params: { sample_method: 'nope', scheduler: 'nope' } }, 202],
        [{ prompt: 'x', seed: 1.5, batch_count: '2', width: '128', sample_params: 'fast' }, 202],
      ];
      for (const [body, status] of cases) {
        const r = await request(s.port, 'POST', '/sdcpp/v1/img_gen', body);
        assert.equal(r.status, status, JSON.stringify(body));
        if (status === 400) assert.deepEqual(r.json, { error: 'invalid generation parameters' });
      }
      const sub = await request(s.port, 'POST', '/sdcpp/v1/img_gen',
        { prompt: 'defaults', seed: 'abc', batch_count: 0, sample_params: { sample_method: 'nope', sample_steps: 0 } });
      const done = await pollJob(s.port, sub.json.id);
      assert.equal(done.json.status, 'completed');
      assert.equal(done.json.result.images.length, 1);
      const png = Buffer.from(done.json.result.images[0].b64_json, 'base64').toString('latin1');
      assert.match(png, /Steps: 1, /);
      assert.match(png, /Seed: 42, Size: 64x64/);
      assert.match(png, /Sampler: euler_a /);
    } finally {
      s.child.kill('SIGTERM');
    }
    await s.exited;
  });

  test('bind failure after `listening on:` exits 0 (srv3); model failure exits 1 (srvfail)', async () => {
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const port = blocker.address().port;
    const r = await run(SD_SERVER, ['-m', M.sdxs, '--listen-port', String(port)]);
    blocker.close();
    assert.equal(r.code, 0);
    assert.ok(r.stdout.endsWith(`[INFO ] main.cpp:148  - listening on: http://127.0.0.1:${port}\n`));

    const f = await run(SD_SERVER, ['--diffusion-model', 'x.gguf', '--llm', 'y.gguf']);
    assert.equal(f.code, 1);
    assert.equal(f.stderr, "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: ''\n[ERROR] main.cpp:92   - new_sd_ctx_t failed\n");
    assert.equal(f.stdout, specFile('srvfail.out'));
    const o = await run(SD_SERVER, ['-m', M.sdxs, '-o', 'x.png']);
    assert.equal(o.code, 1);
    assert.equal(o.stderr, '[ERROR] common.cpp:325  - error: unknown argument: -o\n');
    assert.equal(o.stdout, SRVHELP);
    const h = await run(SD_SERVER, ['--help']);
    assert.equal(h.stdout, SRVHELP);
  });

  test('Klein + Qwen3-8B: job accepted, then the whole server dies (SIGABRT)', async () => {
    const s = await startServer(['--diffusion-model', M.kleinDit, '--llm', M.qwen3_8b, '--vae', M.flux2Vae, '-W', '64', '-H', '64', '--steps', '4']);
    const sub = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: 'a cat' });
    assert.equal(sub.status, 202);
    const ex = await s.exited;
    assert.equal(ex.signal, 'SIGABRT');
    assert.equal(s.state.stderr, 'ggml.c:3286: GGML_ASSERT(ggml_can_mul_mat(a, b)) failed\n');
  });

  test('failed generation -> job failed / HTTP 500, server survives', async () => {
    const s = await startServer(['-m', M.sdxs, '-W', '64', '-H', '64', '--steps', '2'], { FAKE_SD_FAIL_JOBS: '1' });
    try {
      const sub = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: 'x' });
      const done = await pollJob(s.port, sub.json.id);
      assert.equal(done.json.status, 'failed');
      assert.deepEqual(done.json.error, { code: 'generation_failed', message: 'generate_image returned no results' });
      assert.equal(done.json.result, null);
      const sub2 = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: 'x' });
      assert.equal((await pollJob(s.port, sub2.json.id)).json.status, 'completed');
    } finally {
      s.child.kill('SIGTERM');
    }
    await s.exited;
  });
});

describe('test controls', { concurrency: true }, () => {
  const base = () => ['-m', M.sdxs, '-p', 'x', '-W', '64', '-H', '64', '--steps', '5', '-o', path.join(tmp, 'ctl.png')];

  test('FAKE_SD_CRASH_AT_STEP kills sd-cli mid-sampling by signal', async () => {
    const r = await run(SD_CLI, base(), { env: { FAKE_SD_CRASH_AT_STEP: '3', FAKE_SD_CRASH_MESSAGE: 'CUDA error: an illegal memory access was encountered' } });
    assert.equal(r.signal, 'SIGSEGV');
    assert.match(r.stdout, /\| 2\/5 - /);
    assert.doesNotMatch(r.stdout, /\| 3\/5 - /);
    assert.equal(r.stderr, 'CUDA error: an illegal memory access was encountered\n');
    const a = await run(SD_CLI, base(), { env: { FAKE_SD_CRASH_AT_STEP: '1', FAKE_SD_CRASH_SIGNAL: 'SIGABRT' } });
    assert.equal(a.signal, 'SIGABRT');
  });

  test('FAKE_SD_HANG stalls until killed (SIGTERM kills like the real one)', async () => {
    let seen = false;
    const r = await run(SD_CLI, base(), {
      env: { FAKE_SD_HANG: '1', FAKE_SD_HANG_AT_STEP: '2' },
      onStdout: (s, child) => {
        if (!seen && /\| 1\/5 - /.test(s)) {
          seen = true;
          setTimeout(() => child.kill('SIGTERM'), 300);
        }
      },
    });
    assert.ok(seen);
    assert.equal(r.signal, 'SIGTERM');
    assert.doesNotMatch(r.stdout, /\| 2\/5 - /);
  });

  test('FAKE_SD_HANG in sd-server: the job stays generating, HTTP still answers', async () => {
    const s = await startServer(['-m', M.sdxs, '-W', '64', '-H', '64'], { FAKE_SD_HANG: '1' });
    try {
      const sub = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: 'x' });
      await new Promise((r) => setTimeout(r, 200));
      const st = await request(s.port, 'GET', `/sdcpp/v1/jobs/${sub.json.id}`);
      assert.equal(st.json.status, 'generating');
      assert.equal(typeof st.json.started, 'number');
      const sub2 = await request(s.port, 'POST', '/sdcpp/v1/img_gen', { prompt: 'y' });
      const q = await request(s.port, 'GET', `/sdcpp/v1/jobs/${sub2.json.id}`);
      assert.equal(q.json.status, 'queued');
      assert.equal(q.json.queue_position, 1);
      const c = await request(s.port, 'POST', `/sdcpp/v1/jobs/${sub2.json.id}/cancel`);
      assert.equal(c.status, 200);
      assert.equal(c.json.status, 'cancelled');
      assert.deepEqual(c.json.error, { code: 'cancelled', message: 'job cancelled by client' });
      const c1 = await request(s.port, 'POST', `/sdcpp/v1/jobs/${sub.json.id}/cancel`);
      assert.equal(c1.status, 409);
    } finally {
      s.child.kill('SIGTERM');
    }
    assert.equal((await s.exited).signal, 'SIGTERM');
  });

  test('crash of sd-server during its second job', async () => {
    const s = await startServer(['-m', M.sdxs, '-W', '64', '-H', '64', '--steps', '3'], { FAKE_SD_CRASH_AT_STEP: '2', FAKE_SD_CRASH_JOB: '2' });
    const first = await request(s.port, 'POST', '/v1/images/generations', { prompt: 'x' });
    assert.equal(first.status, 200);
    const second = request(s.port, 'POST', '/v1/images/generations', { prompt: 'y' }).catch((e) => e);
    const ex = await s.exited;
    assert.equal(ex.signal, 'SIGSEGV');
    assert.ok((await second) instanceof Error, 'the synchronous request loses its connection');
  });

  test('FAKE_SD_FAIL_LOAD and FAKE_SD_FAIL_SAMPLING', async () => {
    const l = await run(SD_CLI, base(), { env: { FAKE_SD_FAIL_LOAD: '1' } });
    assert.equal(l.code, 1);
    assert.equal(l.stderr, `[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '${M.sdxs}'\n`);
    assert.ok(l.stdout.endsWith('[INFO ] main.cpp:910  - new_sd_ctx_t failed\n'));
    const g = await run(SD_CLI, base(), { env: { FAKE_SD_FAIL_SAMPLING: '1' } });
    assert.equal(g.code, 1);
    assert.match(g.stderr, /sampling for image 1\/1 failed after [0-9.]+s\n/);
    assert.match(g.stderr, /generate failed\n$/);
  });
});
