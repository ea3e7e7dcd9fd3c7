// Self-test of the kubectl and git test servers (kube-apiserver.mjs, git-server.mjs),
// end to end without latchkey: tokens come from the dev provider through the browser
// driver, and the real kubectl and git use them.
//
//   cd tests && node --test --test-timeout=120000 tools/selftest.mjs
//
// Needs `npm ci` in tests/, /usr/bin/chromium, kubectl, git and openssl.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { launchProvider, stopProvider } from '../provider/launch.mjs';
import { launchTool, stopTool } from './launch.mjs';
import { kubeconfig } from './kubeconfig.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DRIVER = path.join(HERE, '..', 'browser', 'driver.mjs');
const CLIENT_ID = 'latchkey-desktop';
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-tools-selftest-'));
const NEW_GIT = '/usr/local/bin/git'; // >= 2.46: credential helpers can answer with authtype=Bearer
const TEST_TIMEOUT_MS = 90_000;
const RUN_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------ helpers
/**
 * Runs a command to completion without blocking the event loop; never rejects on exit status.
 * An `env` value of undefined removes that variable.
 */
function run(cmd, args, { env = {}, cwd = TMP, timeoutMs = RUN_TIMEOUT_MS } = {}) {
  const fullEnv = Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? signal, stdout, stderr }); });
  });
}

const readLog = (file) => (fs.existsSync(file)
  ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
  : []);

/** GET over TLS trusting only `caFile` (fetch cannot be given a CA). */
function httpsGet(url, caFile, headers = {}) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca: fs.readFileSync(caFile), headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

function writeScript(name, text) {
  const file = path.join(TMP, name);
  fs.writeFileSync(file, text, { mode: 0o755 });
  return file;
}

/** Signs alice in with the browser driver (code + PKCE, loopback redirect); returns the token response. */
async function signIn(issuer) {
  const b64url = (b) => Buffer.from(b).toString('base64url');
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  const state = b64url(crypto.randomBytes(16));
  let onHit;
  const hit = new Promise((r) => { onHit = r; });
  const listener = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<h1>done</h1>');
    if (u.pathname === '/callback') onHit(u.searchParams);
  });
  await new Promise((r) => { listener.listen(0, '127.0.0.1', r); });
  const redirectUri = `http://127.0.0.1:${listener.address().port}/callback`;
  try {
    const u = new URL(`${issuer}/auth`);
    for (const [k, v] of Object.entries({
      client_id: CLIENT_ID, response_type: 'code', redirect_uri: redirectUri, scope: 'openid profile email',
      state, nonce: b64url(crypto.randomBytes(16)), code_challenge: challenge, code_challenge_method: 'S256',
    })) u.searchParams.set(k, v);
    const d = await run(process.execPath, [DRIVER, u.href], { timeoutMs: 60_000 });
    assert.equal(d.code, 0, `driver failed: ${d.stderr}`);
    const params = await Promise.race([hit, new Promise((_r, rej) => { setTimeout(() => rej(new Error('no redirect')), 5000); })]);
    assert.equal(params.get('state'), state);
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri,
        client_id: CLIENT_ID, code_verifier: verifier,
      }).toString(),
    });
    const t = await res.json();
    assert.equal(res.status, 200, JSON.stringify(t));
    assert.ok(t.access_token && t.id_token);
    return t;
  } finally {
    listener.closeAllConnections();
    listener.close();
  }
}

// ------------------------------------------------------------------ setup
let op;
let kube;
let gitServer;
let tokens;
const KUBE_DIR = path.join(TMP, 'kube');
const GIT_DIR = path.join(TMP, 'git');
// kubectl and git keep caches and config under HOME: keep them in TMP, and keep the
// machine's git config (credential helpers, askpass) out of the way. GIT_SSL_CAINFO goes
// too: set, it wins over `-c http.sslCAInfo` (some CI images export it).
const HOME_ENV = {
  HOME: TMP, KUBECONFIG: undefined, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: undefined,
  GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: undefined, GIT_SSL_CAINFO: undefined,
};

before(async () => {
  op = await launchProvider();
  // Each result is kept as soon as it comes, so after() stops a server that started even
  // when its sibling failed (a destructured Promise.all would lose it).
  await Promise.all([
    launchTool('kube-apiserver.mjs', ['--issuer', op.issuer, '--audience', CLIENT_ID], { dir: KUBE_DIR }).then((t) => { kube = t; }),
    launchTool('git-server.mjs', ['--issuer', op.issuer], { dir: GIT_DIR }).then((t) => { gitServer = t; }),
    signIn(op.issuer).then((t) => { tokens = t; }),
  ]);
});

after(async () => {
  for (const t of [kube, gitServer]) if (t) await stopTool(t);
  if (op) await stopProvider(op);
  fs.rmSync(TMP, { recursive: true, force: true });
});

// ------------------------------------------------------------------ kubectl
/** kubectl get --raw /version with an exec plugin that hands over `token`. */
function kubectlVersion(token, name) {
  // The token arrives through the kubeconfig's exec env, which is also under test here.
  const plugin = writeScript(`${name}-plugin.sh`, '#!/bin/sh\n'
    + 'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\\n\' "$TEST_TOKEN"\n');
  const cfg = path.join(TMP, `${name}.kubeconfig`);
  fs.writeFileSync(cfg, kubeconfig({
    server: kube.url, caFile: path.join(KUBE_DIR, 'cert.pem'), command: plugin,
    env: [{ name: 'TEST_TOKEN', value: token }], interactiveMode: 'Never',
  }));
  return run('kubectl', ['--kubeconfig', cfg, 'get', '--raw', '/version'], { env: HOME_ENV });
}

test('kube stub accepts the ID token from an exec plugin', { timeout: TEST_TIMEOUT_MS }, async () => {
  const r = await kubectlVersion(tokens.id_token, 'good');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { major: '1', minor: '32', gitVersion: 'v1.32.0-latchkey-stub', platform: 'linux/amd64' });
  const log = readLog(path.join(KUBE_DIR, 'requests.log'));
  assert.ok(log.some((l) => l.path === '/version' && l.ok === true && l.sub === 'alice' && l.error === null), JSON.stringify(log));
  assert.ok(!fs.readFileSync(path.join(KUBE_DIR, 'requests.log'), 'utf8').includes(tokens.id_token), 'token never logged');
});

test('kube stub rejects a garbage token', { timeout: TEST_TIMEOUT_MS }, async () => {
  const logFile = path.join(KUBE_DIR, 'requests.log');
  const before = readLog(logFile).length;
  const r = await kubectlVersion('not-a-jwt', 'garbage');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Unauthorized/);
  const fresh = readLog(logFile).slice(before);
  assert.ok(fresh.length >= 1 && fresh.every((l) => l.ok === false && l.sub === null && l.error), JSON.stringify(fresh));

  // No token at all: a Kubernetes Status body.
  const res = await httpsGet(`${kube.url}/version`, path.join(KUBE_DIR, 'cert.pem'));
  assert.equal(res.status, 401);
  assert.deepEqual(JSON.parse(res.body), { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  assert.equal(readLog(logFile).at(-1).error, 'no authorization header');
});

test('kube stub: wrong audience, no token, other paths', { timeout: TEST_TIMEOUT_MS }, async () => {
  // A second stub for another audience rejects the same, otherwise valid, ID token.
  const other = await launchTool('kube-apiserver.mjs', ['--issuer', op.issuer, '--audience', 'someone-else'], { dir: path.join(TMP, 'kube-aud') });
  try {
    const plugin = writeScript('aud-plugin.sh', `#!/bin/sh\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' '${tokens.id_token}'\n`);
    const cfg = path.join(TMP, 'aud.kubeconfig');
    fs.writeFileSync(cfg, kubeconfig({ server: other.url, caFile: path.join(TMP, 'kube-aud', 'cert.pem'), command: plugin }));
    const r = await run('kubectl', ['--kubeconfig', cfg, 'get', '--raw', '/version'], { env: HOME_ENV });
    assert.notEqual(r.code, 0);
    const log = readLog(path.join(TMP, 'kube-aud', 'requests.log'));
    assert.ok(log.length >= 1 && log.every((l) => !l.ok && /aud/.test(l.error)), JSON.stringify(log));

    const nf = await run('kubectl', ['--kubeconfig', path.join(TMP, 'good.kubeconfig'), 'get', '--raw', '/nope'], { env: HOME_ENV });
    assert.notEqual(nf.code, 0);
    assert.match(nf.stderr, /NotFound|could not find/);
  } finally {
    assert.equal(await stopTool(other), 0, 'clean exit on SIGTERM');
  }
});

// ------------------------------------------------------------------ git
const gitLog = () => readLog(path.join(GIT_DIR, 'requests.log'));
const caArgs = () => ['-c', `http.sslCAInfo=${path.join(GIT_DIR, 'cert.pem')}`];
const repoUrl = (userinfo = '') => `https://${userinfo}127.0.0.1:${gitServer.port}/demo.git`;

test('git clone with the access token as a Basic password', { timeout: TEST_TIMEOUT_MS }, async () => {
  // The system git and the newer one, where both exist: the Rust tests may use either.
  const gits = [...new Set(['git', '/usr/bin/git', NEW_GIT].filter((g) => g === 'git' || fs.existsSync(g)))];
  for (const [i, g] of gits.entries()) {
    const dest = path.join(TMP, `clone-basic-${i}`);
    const before = gitLog().length;
    const r = await run(g, [...caArgs(), 'clone', repoUrl(`oauth2:${tokens.access_token}@`), dest], { env: HOME_ENV });
    assert.equal(r.code, 0, `${g}: ${r.stderr}`);
    assert.equal(fs.readFileSync(path.join(dest, 'README'), 'utf8'), 'hello from latchkey\n');
    const fresh = gitLog().slice(before);
    assert.ok(fresh.some((l) => l.auth === 'basic' && l.ok && l.user === 'oauth2' && l.sub === 'alice' && l.path === '/demo.git/info/refs'), JSON.stringify(fresh));
    assert.ok(fresh.some((l) => l.method === 'POST' && l.path === '/demo.git/git-upload-pack' && l.ok && l.status === 200), JSON.stringify(fresh));
  }
  assert.ok(!fs.readFileSync(path.join(GIT_DIR, 'requests.log'), 'utf8').includes(tokens.access_token), 'token never logged');
});

test('git clone with a wrong token fails without prompting', { timeout: TEST_TIMEOUT_MS }, async () => {
  const before = gitLog().length;
  const r = await run('git', [...caArgs(), 'clone', repoUrl('oauth2:wrong-token@'), path.join(TMP, 'clone-wrong')], { env: HOME_ENV });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Authentication failed|401/);
  const fresh = gitLog().slice(before);
  assert.ok(fresh.length >= 1 && fresh.every((l) => !l.ok && l.status === 401), JSON.stringify(fresh));
  assert.ok(fresh.some((l) => l.auth === 'basic' && /userinfo answered 401/.test(l.error)), JSON.stringify(fresh));
});

test('git clone with a Bearer credential from a helper (git >= 2.46)', { timeout: TEST_TIMEOUT_MS, skip: !fs.existsSync(NEW_GIT) && `${NEW_GIT} not installed` }, async () => {
  const seen = path.join(TMP, 'helper-input.txt');
  const helper = writeScript('bearer-helper.sh', `#!/bin/sh
# A credential helper that only knows Bearer tokens: it answers "get" when git says it can take one.
[ "$1" = get ] || exit 0
authtype=no
while IFS= read -r line; do
  [ -z "$line" ] && break
  printf '%s\\n' "$line" >> '${seen}'
  [ "$line" = 'capability[]=authtype' ] && authtype=yes
done
[ "$authtype" = yes ] || exit 0
printf 'capability[]=authtype\\nauthtype=Bearer\\ncredential=%s\\n' '${tokens.access_token}'
`);
  const dest = path.join(TMP, 'clone-bearer');
  const before = gitLog().length;
  const r = await run(NEW_GIT, [...caArgs(), '-c', `credential.helper=${helper}`, 'clone', repoUrl(), dest], { env: HOME_ENV });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(dest, 'README'), 'utf8'), 'hello from latchkey\n');
  const fresh = gitLog().slice(before);
  assert.ok(fresh.some((l) => l.auth === 'none' && l.status === 401), 'first request is unauthenticated');
  assert.ok(fresh.some((l) => l.auth === 'bearer' && l.ok && l.sub === 'alice' && l.user === null), JSON.stringify(fresh));
  // git passes both challenges to the helper.
  const input = fs.readFileSync(seen, 'utf8');
  assert.match(input, /^wwwauth\[\]=Basic realm="latchkey-test"$/m);
  assert.match(input, /^wwwauth\[\]=Bearer realm="latchkey-test"$/m);
});

test('git server: gzip request bodies and protocol v2 reach http-backend', { timeout: TEST_TIMEOUT_MS }, async () => {
  // git gzips large upload-pack requests; a tiny ls-refs does not get big enough, so by hand.
  const pkt = (s) => `${(s.length + 4).toString(16).padStart(4, '0')}${s}`;
  const body = `${pkt('command=ls-refs\n')}0001${pkt('ref-prefix refs/heads/\n')}0000`;
  for (const gzip of [false, true]) {
    const res = await new Promise((resolve, reject) => {
      const req = https.request(`${gitServer.url}/demo.git/git-upload-pack`, {
        method: 'POST',
        ca: fs.readFileSync(path.join(GIT_DIR, 'cert.pem')),
        headers: {
          authorization: `Bearer ${tokens.access_token}`,
          'content-type': 'application/x-git-upload-pack-request',
          'git-protocol': 'version=2',
          ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        },
      }, (r) => {
        let text = '';
        r.on('data', (d) => { text += d; });
        r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, text }));
      });
      req.on('error', reject);
      req.end(gzip ? zlib.gzipSync(body) : body);
    });
    assert.equal(res.status, 200, `gzip=${gzip}: ${res.text}`);
    assert.equal(res.headers['content-type'], 'application/x-git-upload-pack-result');
    assert.match(res.text, /^[0-9a-f]{4}[0-9a-f]{40} refs\/heads\/main\n/, `gzip=${gzip}: v2 ls-refs answer`);
  }
});
