#!/usr/bin/env node
'use strict';
/**
 * Mutation check: breaks, one at a time, the lines the test suite must guard, runs the relevant
 * part of the suite (the Rust unit tests of the module, then the node suites against a debug
 * build) and records whether each layer failed. Writes bench/mutation-check.md with the commit
 * checked. Every file is restored after its mutation, also on failure or Ctrl-C.
 *
 *   node scripts/mutation-check.js [name ...]      (slow: a rebuild and a test run per mutation)
 *
 * A mutation whose code is not in this checkout (the text to break is absent) is reported as
 * "pending", never as caught.
 */
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

const MUTATIONS = [
  {
    name: 'checksum comparison',
    file: 'src/download/transfer.rs',
    from: '            if &sha != want {',
    to: '            if false && &sha != want {',
    cargo: 'download::',
    node: ['download-single.test.js', 'download-faults.test.js', 'download-validation.test.js', 'download-multi.test.js'],
  },
  {
    name: 'Range offset of a resumed download',
    file: 'src/download/transfer.rs',
    from: 'format!("bytes={offset}-")',
    to: 'format!("bytes={}-", offset + 1)',
    cargo: 'download::',
    node: ['download-faults.test.js', 'download-single.test.js', 'download-process.test.js'],
  },
  {
    name: 'SDXL hint tensor name',
    file: 'src/diffusion/layout.rs',
    from: 'pub const SDXL_HINT_TENSOR: &str = "cond_stage_model.1.sdxl_hint";',
    to: 'pub const SDXL_HINT_TENSOR: &str = "cond_stage_model.sdxl_hint";',
    cargo: 'diffusion::layout',
    node: ['diffusion-server.test.js', 'diffusion-args.test.js'],
  },
  {
    name: 'monotonic progress guard',
    file: 'src/diffusion/progress.rs',
    from: '        if pct > self.pct {',
    to: '        if pct > self.pct || true {',
    cargo: 'diffusion::progress',
    node: ['diffusion-server.test.js', 'diffusion-http.test.js', 'diffusion-robustness.test.js'],
  },
  {
    name: 'delete traversal refusal',
    file: 'src/storage/delete.rs',
    from: '            if !paths.is_inside_models(f) {',
    to: '            if false && !paths.is_inside_models(f) {',
    cargo: 'storage::',
    node: ['storage.test.js'],
  },
  {
    name: 'Origin guard of the image HTTP API',
    file: 'src/diffusion/http_api.rs',
    from: '        method == Method::GET || method == Method::HEAD,\n    ) {',
    to: '        true,\n    ) {',
    cargo: 'diffusion::http',
    node: ['diffusion-http.test.js', 'diffusion-residency.test.js'],
  },
  {
    name: 'ESM export list',
    file: 'index.js',
    from: '  modelManager,\n  diffusionServer,\n',
    to: '  modelManager,\n  diffusionServer: diffusionServer || null,\n',
    cargo: null,
    node: ['esm-exports.test.mjs', 'import.test.js'],
  },
  {
    name: 'page-cache drop-behind',
    file: 'src/download/page_cache.rs',
    from: '            wait_and_drop(file, self.dropped, self.started - self.dropped);',
    to: '            let _ = (file, wait_and_drop as fn(&File, u64, u64));',
    cargo: 'download::',
    node: ['download-single.test.js'],
  },
  {
    name: 'sharedSize owner count',
    file: 'src/storage/store.rs',
    from: 'owners.get(&k).is_some_and(|o| o.len() > 1)',
    to: 'owners.get(&k).is_some_and(|o| o.len() > 0)',
    cargo: 'storage::',
    node: ['storage.test.js', 'download-blobs.test.js'],
  },
  {
    name: 'read-buffer cap of the download client',
    file: 'src/http/client.rs',
    from: '        .http1_max_buf_size(READ_BUFFER)',
    to: '        .http1_max_buf_size(8 * READ_BUFFER)',
    cargo: 'http::',
    node: ['download-parallel.test.js'],
  },
  {
    name: 'HTTP/1.1 for proxied downloads',
    file: 'src/http/client.rs',
    from: '            tls.alpn_protocols = vec![b"http/1.1".to_vec()];',
    to: '            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];',
    cargo: 'http::',
    node: ['download-parallel.test.js'],
  },
  {
    name: 'untrusted certificate is final',
    file: 'src/http/client.rs',
    from: '        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {',
    to: '        if err.downcast_ref::<rustls::Error>().is_some_and(|_| false) {',
    cargo: 'http::',
    node: ['download-adversarial.test.js'],
  },
  {
    name: 'lock taken again when its directory is removed under it',
    file: 'src/storage/lock.rs',
    from: '            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,',
    to: '            Err(e) if e.kind() == std::io::ErrorKind::NotFound && false => continue,',
    cargo: 'storage::lock',
    node: ['download-parallel.test.js'],
  },
];

const env = { ...process.env, CARGO_BUILD_TARGET: process.env.CARGO_BUILD_TARGET || 'x86_64-unknown-linux-gnu' };

function run(cmd, args) {
  const t0 = Date.now();
  const r = spawnSync('nice', ['-n', '10', cmd, ...args], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  return { ok: r.status === 0, out, secs: (Date.now() - t0) / 1000 };
}

/** First failing test names in node's or cargo's output, for the record. */
function failures(out) {
  const names = new Set();
  for (const m of out.matchAll(/^\s*not ok \d+ - (.+)$/gm)) if (!/^\s*not ok \d+ - \S+\.test\.js$/.test(m[0])) names.add(m[1].trim());
  for (const m of out.matchAll(/^test (\S+) \.\.\. FAILED$/gm)) names.add(m[1]);
  // Paths relative to the repository: the record names no machine's folders.
  return [...names].slice(0, 3).map((n) => n.split(`${ROOT}${path.sep}`).join(''));
}

const restore = new Map();
function restoreAll() {
  for (const [file, text] of restore) fs.writeFileSync(file, text);
  restore.clear();
}
process.on('SIGINT', () => {
  restoreAll();
  process.exit(130);
});

function check(m) {
  const file = path.join(ROOT, m.file);
  const text = fs.readFileSync(file, 'utf8');
  const count = text.split(m.from).length - 1;
  if (count !== 1) return { status: 'pending', note: count ? `text found ${count} times` : `not in ${m.file} at this commit` };
  restore.set(file, text);
  fs.writeFileSync(file, text.replace(m.from, m.to));
  try {
    const layers = [];
    if (m.cargo) {
      const r = run('cargo', ['test', '--lib', m.cargo]);
      layers.push({ layer: `cargo test ${m.cargo}`, caught: !r.ok, failed: failures(r.out), secs: r.secs });
    }
    if (m.node) {
      const b = run('node', ['scripts/build.js', '--debug']);
      if (!b.ok) {
        layers.push({ layer: 'debug build', caught: true, failed: ['the mutated code does not build'], secs: b.secs });
      } else {
        const r = run('node', ['--test', ...m.node.map((f) => path.join('__test__', f))]);
        layers.push({ layer: `node --test ${m.node.join(' ')}`, caught: !r.ok, failed: failures(r.out), secs: r.secs });
      }
    }
    return { status: layers.some((l) => l.caught) ? 'caught' : 'MISSED', layers };
  } finally {
    restoreAll();
  }
}

function main() {
  const only = process.argv.slice(2);
  const list = () => MUTATIONS.filter((m) => !only.length || only.some((o) => m.name.includes(o)));
  const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const rows = [];
  for (const m of list()) {
    console.log(`mutation: ${m.name} (${m.file})`);
    const r = check(m);
    console.log(`  ${r.status}${r.note ? `: ${r.note}` : ''}`);
    for (const l of r.layers || []) console.log(`  ${l.caught ? 'failed' : 'passed'}: ${l.layer} (${l.secs.toFixed(0)} s) ${l.failed.join('; ')}`);
    rows.push({ m, r });
  }
  // Rebuild the unmutated addon so the checkout is left as it was.
  run('node', ['scripts/build.js', '--debug']);
  // Rows of mutations not run this time are kept from the previous file (each row names its commit).
  const file = path.join(ROOT, 'bench', 'mutation-check.md');
  const previous = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| line broken')) : [];
  const cell = (r, prefix) => {
    const l = (r.layers || []).find((x) => x.layer.startsWith(prefix));
    if (!l) return null;
    return l.caught ? `failed: ${l.failed.join('; ') || 'see log'}` : 'passed (missed)';
  };
  const one = (t) => t.trim().replace(/\s*\n\s*/g, ' ');
  const fresh = new Map(rows.map(({ m, r }) => [m.name, `| ${m.name}: \`${one(m.from)}\` -> \`${one(m.to)}\` | ${m.file} | ${r.status} | ${one(cell(r, 'cargo') || r.note || '-')} | ${one(cell(r, 'node') || cell(r, 'debug') || (r.note ? 'not run' : '-'))} | ${commit} |`]));
  const table = MUTATIONS.map((m) => fresh.get(m.name) || previous.find((l) => l.startsWith(`| ${m.name}: `))).filter(Boolean);
  const md = [
    '# Mutation check',
    '',
    'Written by `node scripts/mutation-check.js [name ...]`. Each line below was broken alone; "caught" means',
    'at least one layer of `npm test` failed (the cargo unit tests of the module, or the node suites',
    'against a debug build of the mutated code); the cells name the tests that failed. "pending": the',
    'code to break is not in the commit checked.',
    '',
    '| line broken | file | result | cargo unit tests | node suites | commit |',
    '|---|---|---|---|---|---|',
    ...table,
    '',
  ].join('\n');
  fs.writeFileSync(file, md);
  console.log(md);
  process.exit(rows.some(({ r }) => r.status === 'MISSED') ? 1 : 0);
}

main();
