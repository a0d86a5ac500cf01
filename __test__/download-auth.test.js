'use strict';
// Gated repositories, tokens, endpoints: the token reaches the Hugging Face endpoint and nothing else.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { g, setup, bytes, sha256File, tree, rejectsDownload } = require('./helpers/download.js');

const REPO = 'black-forest-labs/FLUX.2-dev';

async function gated(t, serverOptions = {}, gatedValue = true) {
  const ctx = await setup(t, { token: 'hf_good', crossHost: true, ...serverOptions });
  const f = ctx.srv.addFile(REPO, 'ae.safetensors', bytes(200000, 21), { gated: gatedValue });
  const config = { source: 'huggingface', repo: REPO, file: 'ae.safetensors', name: 'Flux 2 VAE', type: 'diffusion', ...ctx.hf };
  return { ...ctx, f, config };
}

test('gated repo without a token: DownloadError naming the repo, before anything is written', async (t) => {
  const { srv, root, f, config } = await gated(t);
  const err = await rejectsDownload(g.modelManager.downloadModel(config), /black-forest-labs\/FLUX\.2-dev is gated or private \(HTTP 401\) and no token was sent/);
  assert.equal(err.details.repo, REPO);
  assert.equal(err.details.gated, true);
  assert.equal(err.details.tokenSent, false);
  assert.equal(err.details.status, 401);
  assert.match(err.message, /HF_TOKEN|hfToken/);
  assert.equal(srv.statsFor(f.path).get, 0, 'no GET after the refused HEAD');
  assert.deepEqual(tree(path.join(root, 'models')), []);
});

test('gated repo with hfToken: the token goes to the endpoint, never to the CDN on another host', async (t) => {
  const { srv, f, config } = await gated(t);
  const info = await g.modelManager.downloadModel({ ...config, hfToken: 'hf_good' });
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.equal(sha256File(info.path), f.sha256);
  const resolveAuth = srv.statsFor(f.path).authorization;
  assert.ok(resolveAuth.length >= 2 && resolveAuth.every((a) => a === 'Bearer hf_good'), JSON.stringify(resolveAuth));
  const cdnRequests = srv.requests.filter((r) => r.listener === 'cdn');
  assert.ok(cdnRequests.length >= 2, 'the body came from the other host');
  for (const r of cdnRequests) assert.equal(r.headers.authorization, undefined);
  assert.deepEqual(srv.statsFor(f.cdnPath).authorization, []);
  // The token is not stored anywhere in the record.
  assert.doesNotMatch(JSON.stringify(info), /hf_good/);
});

test('HF_TOKEN from the environment is used the same way', async (t) => {
  const { srv, f, config } = await gated(t);
  const prev = process.env.HF_TOKEN;
  process.env.HF_TOKEN = 'hf_good';
  t.after(() => {
    if (prev === undefined) delete process.env.HF_TOKEN;
    else process.env.HF_TOKEN = prev;
  });
  const info = await g.modelManager.downloadModel(config);
  assert.equal(info.checksum, `sha256:${f.sha256}`);
  assert.ok(srv.statsFor(f.path).authorization.includes('Bearer hf_good'));
});

test('HF_ENDPOINT from the environment selects the endpoint', async (t) => {
  const { srv, f, config } = await gated(t, {}, false);
  const prev = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = `${srv.url}/`;
  t.after(() => {
    if (prev === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = prev;
  });
  const { hfEndpoint, ...withoutEndpoint } = config;
  assert.equal(hfEndpoint, srv.url);
  const info = await g.modelManager.downloadModel(withoutEndpoint);
  assert.equal(info.source.url, f.url);
});

test('a rejected token is reported as such', async (t) => {
  const { config } = await gated(t);
  const err = await rejectsDownload(g.modelManager.downloadModel({ ...config, hfToken: 'hf_wrong' }), /denied \(HTTP 401\) although a token was sent/);
  assert.equal(err.details.tokenSent, true);
});

test('gated repo the account has no access to (403)', async (t) => {
  const { config } = await gated(t, {}, 'forbidden');
  const err = await rejectsDownload(g.modelManager.downloadModel({ ...config, hfToken: 'hf_good' }), /FLUX\.2-dev was denied \(HTTP 403\)/);
  assert.equal(err.details.status, 403);
});

test('a URL source on another origin never receives the token', async (t) => {
  const { srv } = await setup(t, { token: 'hf_good' });
  const raw = srv.addRawFile('/files/public.bin', bytes(5000));
  const info = await g.modelManager.downloadModel({
    source: 'url', url: raw.url, name: 'Public', type: 'llm', hfToken: 'hf_good', hfEndpoint: 'http://127.0.0.1:9',
  });
  assert.equal(info.checksum, `sha256:${raw.sha256}`);
  assert.deepEqual(srv.statsFor(raw.path).authorization, []);
  // The same file on the endpoint's origin with a token requirement gets it.
  const locked = srv.addRawFile('/files/locked.bin', bytes(5000, 2), { requireToken: true });
  await rejectsDownload(g.modelManager.downloadModel({ source: 'url', url: locked.url, name: 'Locked', type: 'llm', hfEndpoint: 'http://127.0.0.1:9', hfToken: 'hf_good' }), /HTTP error: 401 Unauthorized/);
  const ok = await g.modelManager.downloadModel({ source: 'url', url: locked.url, name: 'Locked', type: 'llm', hfEndpoint: srv.url, hfToken: 'hf_good' });
  assert.equal(ok.checksum, `sha256:${locked.sha256}`);
});
