#!/usr/bin/env node
// A stand-in Kubernetes API server for the kubectl exec credential plugin tests.
//
//   node tests/tools/kube-apiserver.mjs --issuer <issuer> --audience latchkey-desktop --dir <dir> [--port 0]
//
// It authenticates every request the way the Kubernetes OIDC authenticator does
// (--oidc-issuer-url / --oidc-client-id): `Authorization: Bearer <ID token>`, the JWT's
// signature checked against the issuer's JWKS (found through its discovery document),
// `iss` equal to the issuer and `aud` containing the audience, `exp`/`nbf` honoured with
// no clock skew. It serves one resource, GET /version; the rest is 404.
//
// TLS with a fresh self-signed certificate: <dir>/cert.pem is what a kubeconfig names as
// `certificate-authority`. Prints exactly one stdout line `READY https://127.0.0.1:<port>`
// once listening; logs go to stderr. One JSON line per request is appended to
// <dir>/requests.log: {"path","ok","sub","error"} (sub null unless ok, error null if ok;
// never the token). Exits 0 on SIGTERM or SIGINT.

import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { makeCert } from './tls.mjs';

const { values: argv } = parseArgs({
  options: {
    issuer: { type: 'string' },
    audience: { type: 'string', default: 'latchkey-desktop' },
    dir: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
const fail = (msg) => {
  process.stderr.write(`kube-apiserver: ${msg}\n`);
  process.exit(2);
};
if (!argv.issuer) fail('--issuer is required');
if (!argv.dir) fail('--dir is required');
const ISSUER = argv.issuer;
const AUDIENCE = argv.audience;
const DIR = path.resolve(argv.dir);
const PORT = Number(argv.port);
const LOG_FILE = path.join(DIR, 'requests.log');

const log = (...a) => process.stderr.write(`[kube-apiserver ${new Date().toISOString()}] ${a.join(' ')}\n`);

// Discovery once at startup, like the real authenticator: a provider that is not up yet is
// a setup mistake, better reported now than as a 401 later.
let discovery;
try {
  const res = await fetch(`${ISSUER}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  discovery = await res.json();
} catch (e) {
  fail(`discovery at ${ISSUER}/.well-known/openid-configuration failed: ${e.message}`);
}
if (discovery.issuer !== ISSUER) fail(`discovery says issuer ${discovery.issuer}, expected ${ISSUER}`);
// No cooldown: a test that rotates the provider's keys expects the new kid to be fetched
// at once (the real authenticator also refetches on an unknown kid, rate-limited).
const JWKS = createRemoteJWKSet(new URL(discovery.jwks_uri), { cooldownDuration: 0 });
// "Whatever the provider uses": the algorithms it advertises for ID tokens.
const ALGORITHMS = discovery.id_token_signing_alg_values_supported?.filter((a) => a !== 'none');

const VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-latchkey-stub', platform: 'linux/amd64' };
const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function record(entry) {
  try {
    fs.appendFileSync(LOG_FILE, `${JSON.stringify(entry)}\n`);
  } catch (e) {
    log(`cannot write ${LOG_FILE}: ${e.message}`);
  }
}

/** Resolves with the verified payload; rejects with a reason fit for the log. */
async function authenticate(req) {
  const m = (req.headers.authorization ?? '').match(/^Bearer +(\S+)\s*$/i);
  if (!m) throw new Error(req.headers.authorization ? 'authorization is not a Bearer token' : 'no authorization header');
  try {
    const { payload } = await jwtVerify(m[1], JWKS, { issuer: ISSUER, audience: AUDIENCE, algorithms: ALGORITHMS });
    return payload;
  } catch (e) {
    throw new Error(e.code ? `${e.code}: ${e.message}` : e.message);
  }
}

async function handle(req, res) {
  const url = new URL(req.url, 'https://127.0.0.1');
  req.resume(); // no route reads a body
  let payload;
  try {
    payload = await authenticate(req);
  } catch (e) {
    record({ path: url.pathname, ok: false, sub: null, error: e.message });
    log(`${req.method} ${url.pathname} -> 401 (${e.message})`);
    return sendJson(res, 401, UNAUTHORIZED);
  }
  record({ path: url.pathname, ok: true, sub: payload.sub ?? null, error: null });
  if (req.method === 'GET' && url.pathname === '/version') {
    log(`GET /version -> 200 (sub ${payload.sub})`);
    return sendJson(res, 200, VERSION);
  }
  log(`${req.method} ${url.pathname} -> 404 (sub ${payload.sub})`);
  return sendJson(res, 404, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'the server could not find the requested resource', reason: 'NotFound', details: {}, code: 404,
  });
}

const { cert, key } = makeCert(DIR);
const server = https.createServer({ cert, key }, (req, res) => {
  handle(req, res).catch((e) => {
    log('handler error:', e?.stack ?? e);
    if (!res.headersSent) sendJson(res, 500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: String(e?.message ?? e), code: 500 });
    else res.destroy();
  });
});
server.keepAliveTimeout = 5000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
}).catch((e) => fail(`cannot listen on 127.0.0.1:${PORT}: ${e.message}`));
const url = `https://127.0.0.1:${server.address().port}`;
log(`${url}; issuer ${ISSUER}; audience ${AUDIENCE}; algorithms ${ALGORITHMS?.join(',') ?? 'any'}; log ${LOG_FILE}`);
process.stdout.write(`READY ${url}\n`);

let stopping = false;
function shutdown(sig) {
  if (stopping) return;
  stopping = true;
  log(`${sig}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
