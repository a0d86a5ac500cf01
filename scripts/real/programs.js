'use strict';
/**
 * The real stable-diffusion.cpp (sd-server, sd-cli) and llama.cpp (llama-server) programs for
 * `npm run test:real`: taken from SD_BIN_DIR / LLAMA_BIN_DIR when set, otherwise built once from
 * the sources vendored in the PyPI sdists into a cache directory outside the repository.
 *
 *   stable-diffusion-cpp-python 0.4.7  vendors stable-diffusion.cpp with sd-server's async API
 *   llama-cpp-python 0.3.33            vendors llama.cpp build 9874 (78d2f5246)
 *
 * Each build takes 10+ minutes on two cores and needs cmake, ninja and a C++ compiler.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CACHE = process.env.GENAI_REAL_CACHE || path.join(os.homedir(), '.cache', 'genai-electron-rs', 'real');

const SD = {
  pkg: 'stable-diffusion-cpp-python',
  version: '0.4.7',
  source: 'vendor/stable-diffusion.cpp',
  configure: ['-DCMAKE_BUILD_TYPE=Release', '-DGGML_NATIVE=ON', '-DSD_SERVER_BUILD_FRONTEND=OFF', '-DSD_WEBP=OFF', '-DSD_WEBM=OFF'],
  targets: ['sd-server', 'sd-cli'],
};
const LLAMA = {
  pkg: 'llama-cpp-python',
  version: '0.3.33',
  source: 'vendor/llama.cpp',
  configure: ['-DCMAKE_BUILD_TYPE=Release', '-DGGML_NATIVE=ON', '-DLLAMA_BUILD_UI=OFF', '-DLLAMA_USE_PREBUILT_UI=OFF',
    '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_NUMBER=9874', '-DLLAMA_BUILD_COMMIT=78d2f5246'],
  targets: ['llama-server'],
};

function sh(cmd, args, opts = {}) {
  console.log(`  $ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status === null ? r.signal : `exit ${r.status}`})`);
}

const hasAll = (dir, names) => names.every((n) => fs.existsSync(path.join(dir, n)));

/** Downloads the sdist with pip, unpacks it and builds `spec.targets`; returns build/bin. */
function build(spec) {
  const dir = path.join(CACHE, `${spec.pkg}-${spec.version}`);
  const bin = path.join(dir, 'build', 'bin');
  if (hasAll(bin, spec.targets)) return bin;
  fs.mkdirSync(dir, { recursive: true });
  const tarball = path.join(dir, 'sdist.tar.gz');
  if (!fs.existsSync(tarball)) {
    const dl = path.join(dir, 'download');
    // Only the package itself as source: `:all:` would also build pip's build backends from source.
    sh('python3', ['-m', 'pip', 'download', '--no-deps', '--no-binary', spec.pkg, '-d', dl, `${spec.pkg}==${spec.version}`]);
    const f = fs.readdirSync(dl).find((n) => n.endsWith('.tar.gz'));
    if (!f) throw new Error(`pip left no sdist in ${dl}`);
    fs.renameSync(path.join(dl, f), tarball);
  }
  const src = path.join(dir, 'src');
  if (!fs.existsSync(path.join(src, spec.source))) {
    fs.mkdirSync(src, { recursive: true });
    sh('tar', ['xzf', tarball, '-C', src, '--strip-components=1']);
  }
  const jobs = String(Math.max(1, os.cpus().length));
  sh('cmake', ['-S', path.join(src, spec.source), '-B', path.join(dir, 'build'), '-G', 'Ninja', ...spec.configure]);
  sh('nice', ['-n', '19', 'cmake', '--build', path.join(dir, 'build'), '--target', ...spec.targets, '-j', jobs]);
  if (!hasAll(bin, spec.targets)) throw new Error(`the build did not produce ${spec.targets.join(', ')} in ${bin}`);
  return bin;
}

function fromEnvOrBuild(envName, spec) {
  const given = process.env[envName];
  if (given) {
    if (!hasAll(given, spec.targets)) throw new Error(`${envName}=${given} lacks ${spec.targets.join(' or ')}`);
    return given;
  }
  return build(spec);
}

/** Folder holding sd-server and sd-cli. */
const sdBinDir = () => fromEnvOrBuild('SD_BIN_DIR', SD);
/** Folder holding llama-server. */
const llamaBinDir = () => fromEnvOrBuild('LLAMA_BIN_DIR', LLAMA);

module.exports = { CACHE, sdBinDir, llamaBinDir };
