#!/usr/bin/env node
// An HTTPS git server for the git credential helper tests: the real `git http-backend`
// (CGI) behind a front end that takes OAuth access tokens.
//
//   node tests/tools/git-server.mjs --issuer <issuer> --dir <dir> [--port 0]
//
// At start it (re)creates <dir>/repos/demo.git, a bare repository with one commit on `main`
// holding README ("hello from latchkey"); pushes are off (http.receivepack false).
//
// Credentials: `Authorization: Basic base64(<any user>:<token>)` or `Authorization: Bearer
// <token>`. The token is valid if the provider's userinfo endpoint (<issuer>/me) accepts it;
// nothing is cached, so a revoked or expired token fails on the next request. Without valid
// credentials the answer is 401 with two challenges, `Basic realm="latchkey-test"` and
// `Bearer realm="latchkey-test"`, so git >= 2.46 can offer a helper the Bearer scheme.
//
// TLS with a fresh self-signed certificate: <dir>/cert.pem is what git's http.sslCAInfo
// names. Prints exactly one stdout line `READY https://127.0.0.1:<port>` once listening;
// logs go to stderr. One JSON line per request is appended to <dir>/requests.log:
// {"method","path","auth":"basic"|"bearer"|"none","ok","user","sub","status","error"}
// (user: the Basic user name; sub: from userinfo when ok; never the token).
// Exits 0 on SIGTERM or SIGINT.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { makeCert } from './tls.mjs';

const { values: argv } = parseArgs({
  options: {
    issuer: { type: 'string' },
    dir: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
const fail = (msg) => {
  process.stderr.write(`git-server: ${msg}\n`);
  process.exit(2);
};
if (!argv.issuer) fail('--issuer is required');
if (!argv.dir) fail('--dir is required');
const ISSUER = argv.issuer.replace(/\/+$/, '');
const DIR = path.resolve(argv.dir);
const PORT = Number(argv.port);
const REPOS = path.join(DIR, 'repos');
const LOG_FILE = path.join(DIR, 'requests.log');
const REALM = 'latchkey-test';
const USERINFO_TIMEOUT_MS = 5000;
const MAX_BODY = 64 * 1024 * 1024;

const log = (...a) => process.stderr.write(`[git-server ${new Date().toISOString()}] ${a.join(' ')}\n`);

// ---------------------------------------------------------------- repository
// The user's and the system's git config stay out of it (signing, hooks, init.defaultBranch).
const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' };
const git = (args, cwd) => execFileSync('git', args, { cwd, env: GIT_ENV, timeout: 30_000, stdio: ['ignore', 'ignore', 'pipe'] });

function makeRepo() {
  const bare = path.join(REPOS, 'demo.git');
  fs.rmSync(bare, { recursive: true, force: true });
  fs.mkdirSync(REPOS, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-git-work-'));
  try {
    git(['init', '-q', '-b', 'main', work]);
    fs.writeFileSync(path.join(work, 'README'), 'hello from latchkey\n');
    git(['add', 'README'], work);
    git(['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'initial commit'], work);
    git(['clone', '-q', '--bare', work, bare]);
    git(['config', 'http.receivepack', 'false'], bare);
    // Only for the dumb protocol; cheap, and keeps a smart-less client working too.
    git(['update-server-info'], bare);
  } catch (e) {
    fail(`cannot create ${bare}: ${e.stderr?.toString().trim() || e.message}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- auth
/** @returns {{ auth: 'basic'|'bearer'|'none', user: string|null, token: string|null }} */
function credentials(req) {
  const h = req.headers.authorization ?? '';
  const m = h.match(/^(\S+)\s+(.*)$/);
  const scheme = m?.[1].toLowerCase();
  if (scheme === 'bearer' && m[2].trim()) return { auth: 'bearer', user: null, token: m[2].trim() };
  if (scheme === 'basic') {
    const decoded = Buffer.from(m[2].trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) return { auth: 'basic', user: decoded.slice(0, colon), token: decoded.slice(colon + 1) };
    return { auth: 'basic', user: decoded, token: null };
  }
  return { auth: 'none', user: null, token: null };
}

/** Resolves with the userinfo `sub` if the provider takes the token; rejects with a reason. */
async function checkToken(token) {
  if (!token) throw new Error('no token');
  let res;
  try {
    res = await fetch(`${ISSUER}/me`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(USERINFO_TIMEOUT_MS),
    });
  } catch (e) {
    throw new Error(`userinfo unreachable: ${e.message}`);
  }
  const text = await res.text();
  if (res.status !== 200) throw new Error(`userinfo answered ${res.status}`);
  try {
    return JSON.parse(text).sub ?? null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- http
function record(entry) {
  try {
    fs.appendFileSync(LOG_FILE, `${JSON.stringify(entry)}\n`);
  } catch (e) {
    log(`cannot write ${LOG_FILE}: ${e.message}`);
  }
}

async function readBody(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > MAX_BODY) throw new Error('request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function sendText(res, status, text, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const safeDecode = (p) => {
  try { return decodeURIComponent(p); } catch { return p; }
};

/**
 * Runs `git http-backend` for one request. The body is buffered (and gunzipped: git gzips
 * large POST bodies) so CONTENT_LENGTH is exact, which every http-backend version honours.
 */
async function backend(req, res, url, remoteUser) {
  let body = await readBody(req);
  const encoding = (req.headers['content-encoding'] ?? '').toLowerCase();
  if (encoding === 'gzip' || encoding === 'x-gzip') body = zlib.gunzipSync(body);

  const env = {
    PATH: process.env.PATH,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_PROJECT_ROOT: REPOS,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_METHOD: req.method,
    PATH_INFO: safeDecode(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REMOTE_USER: remoteUser,
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  if (req.headers['content-type']) env.CONTENT_TYPE = req.headers['content-type'];
  if (req.method === 'POST' || body.length) env.CONTENT_LENGTH = String(body.length);
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = req.headers['git-protocol'];

  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  res.once('close', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  child.stderr.on('data', (d) => log(`http-backend: ${String(d).trimEnd()}`));
  child.stdin.on('error', () => {}); // it may exit before reading a body it does not want
  child.stdin.end(body);

  // CGI response: header lines up to a blank line, then the body, streamed as it comes.
  await new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let headersDone = false;
    child.once('error', reject);
    child.stdout.on('data', (chunk) => {
      if (headersDone) { res.write(chunk); return; }
      head = Buffer.concat([head, chunk]);
      const m = head.toString('latin1').match(/\r?\n\r?\n/);
      if (!m) return;
      headersDone = true;
      let status = 200;
      const headers = {};
      for (const line of head.subarray(0, m.index).toString('latin1').split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      const rest = head.subarray(m.index + m[0].length);
      if (rest.length) res.write(rest);
    });
    child.stdout.once('end', () => {
      if (!headersDone) {
        log('http-backend wrote no CGI headers');
        if (!res.headersSent) sendText(res, 502, 'git http-backend failed\n');
        else res.end();
      } else {
        res.end();
      }
      resolve();
    });
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'https://127.0.0.1');
  const { auth, user, token } = credentials(req);
  const entry = { method: req.method, path: url.pathname, auth, ok: false, user, sub: null, status: null, error: null };
  let recorded = false;
  const recordOnce = (status) => {
    if (recorded) return;
    recorded = true;
    entry.status = status;
    record(entry);
    log(`${req.method} ${url.pathname}${url.search} auth=${auth} -> ${status}${entry.error ? ` (${entry.error})` : ''}`);
  };
  // 'finish': the answer was handed to the OS, before the client can act on it; 'close' covers
  // a connection that ended first.
  res.once('finish', () => recordOnce(res.statusCode));
  res.once('close', () => recordOnce(res.statusCode));

  try {
    entry.sub = await checkToken(token);
    entry.ok = true;
  } catch (e) {
    entry.error = auth === 'none' ? 'no credentials' : e.message;
    req.resume();
    // Logged before the answer goes out: git may exit on a 401 before this side sees the
    // connection close, and a test reading the log right after must find the line.
    recordOnce(401);
    // Two header lines, one challenge each: git hands both to a credential helper as wwwauth[].
    return sendText(res, 401, 'Unauthorized\n', {
      'www-authenticate': [`Basic realm="${REALM}"`, `Bearer realm="${REALM}"`],
    });
  }
  return backend(req, res, url, user || entry.sub || 'latchkey');
}

makeRepo();
const { cert, key } = makeCert(DIR);
const server = https.createServer({ cert, key }, (req, res) => {
  handle(req, res).catch((e) => {
    log('handler error:', e?.stack ?? e);
    if (!res.headersSent) sendText(res, 500, `${e?.message ?? e}\n`);
    else res.destroy();
  });
});
server.keepAliveTimeout = 5000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
}).catch((e) => fail(`cannot listen on 127.0.0.1:${PORT}: ${e.message}`));
const url = `https://127.0.0.1:${server.address().port}`;
log(`${url}; repos ${REPOS}; issuer ${ISSUER}; log ${LOG_FILE}`);
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
