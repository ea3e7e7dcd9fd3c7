// Self-test of the test tools: the dev provider (server.mjs) and the browser
// driver (../browser/driver.mjs), end to end with a real headless Chromium.
//
//   node --test tests/provider/selftest.mjs
//
// Needs `npm ci` in tests/ and /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchProvider, stopProvider } from './launch.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DRIVER = path.join(HERE, '..', 'browser', 'driver.mjs');
const CLIENT_ID = 'latchkey-desktop';
const ALL_SCOPES = 'openid profile email offline_access api:read';
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-selftest-'));

// ------------------------------------------------------------------ helpers
const providers = [];
async function startProvider(extraEnv = {}) {
  const p = await launchProvider({ env: extraEnv });
  providers.push(p);
  return p;
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

/** One-shot loopback listener like the app's: resolves with the callback URL. */
function startListener() {
  return new Promise((resolve) => {
    let onHit;
    const hit = new Promise((r) => { onHit = r; });
    const server = http.createServer((req, res) => {
      const u = new URL(req.url, `http://127.0.0.1:${server.address().port}`);
      if (u.pathname !== '/callback') { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<html><body><h1>Latchkey: ${u.searchParams.has('error') ? 'sign-in failed' : 'signed in'}</h1></body></html>`);
      onHit(u);
    });
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      hit,
      close: () => { server.closeAllConnections(); server.close(); },
    }));
  });
}

function runDriver(url, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DRIVER, url], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.resume();
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

function authUrl(issuer, params) {
  const u = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  return u.href;
}

/**
 * Run a full front-channel authorization with the driver.
 * Returns { params (URLSearchParams of the redirect), verifier, redirectUri, state, nonce, driver }.
 */
async function authorize(p, { scope = ALL_SCOPES, prompt = 'consent', custom = false, env = {}, extra = {} } = {}) {
  const { verifier, challenge } = pkce();
  const state = b64url(crypto.randomBytes(24));
  const nonce = b64url(crypto.randomBytes(24));
  const listener = custom ? undefined : await startListener();
  const redirectUri = custom ? 'com.example.latchkey:/callback' : `http://127.0.0.1:${listener.port}/callback`;
  const capture = path.join(TMP, `capture-${crypto.randomUUID()}`);
  const url = authUrl(p.issuer, {
    client_id: CLIENT_ID, response_type: 'code', redirect_uri: redirectUri, scope, prompt,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  });
  try {
    const driver = await runDriver(url, { DRIVER_CAPTURE: capture, ...env });
    let redirect;
    if (custom) {
      redirect = fs.existsSync(capture) ? new URL(fs.readFileSync(capture, 'utf8').trim()) : undefined;
    } else {
      redirect = await Promise.race([listener.hit, new Promise((r) => { setTimeout(r, 100); })]);
    }
    return { params: redirect?.searchParams, redirect, verifier, redirectUri, state, nonce, driver };
  } finally {
    listener?.close();
  }
}

async function postForm(url, form, init = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    ...init,
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

const exchangeCode = (p, a) => postForm(`${p.issuer}/token`, {
  grant_type: 'authorization_code', code: a.params.get('code'), redirect_uri: a.redirectUri,
  client_id: CLIENT_ID, code_verifier: a.verifier,
});
const refresh = (p, rt) => postForm(`${p.issuer}/token`, { grant_type: 'refresh_token', refresh_token: rt, client_id: CLIENT_ID });

async function dev(p, method, route, body) {
  const res = await fetch(`${p.issuer}/__dev/${route}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(res.status, 200, `/__dev/${route} -> ${res.status}`);
  return res.json();
}

function decodeJwt(jwt) {
  const [h, pl, s] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(pl, 'base64url')), signingInput: `${h}.${pl}`, signature: Buffer.from(s, 'base64url') };
}

async function verifyIdToken(p, idToken) {
  const jwt = decodeJwt(idToken);
  const jwks = await (await fetch(`${p.issuer}/jwks`)).json();
  const jwk = jwks.keys.find((k) => k.kid === jwt.header.kid);
  assert.ok(jwk, `kid ${jwt.header.kid} is in the JWKS`);
  assert.equal(jwk.alg, jwt.header.alg);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(jwt.signingInput);
  const ok = {
    RS256: () => crypto.verify('sha256', data, key, jwt.signature),
    PS256: () => crypto.verify('sha256', data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, jwt.signature),
    ES256: () => crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature),
    EdDSA: () => crypto.verify(null, data, key, jwt.signature),
  }[jwt.header.alg]();
  assert.ok(ok, `ID token signature verifies (${jwt.header.alg})`);
  return jwt;
}

function assertGoodRedirect(p, a) {
  assert.equal(a.driver.code, 0, `driver failed: ${a.driver.stderr}`);
  assert.ok(a.params, 'redirect received');
  assert.equal(a.params.get('error'), null, `error: ${a.params.get('error_description')}`);
  assert.equal(a.params.get('state'), a.state);
  assert.equal(a.params.get('iss'), p.issuer, 'RFC 9207 iss parameter');
  assert.ok(a.params.get('code'));
}

// ------------------------------------------------------------------ tests
let op;
before(async () => { op = await startProvider(); });
after(async () => {
  for (const p of providers) await stopProvider(p);
  fs.rmSync(TMP, { recursive: true, force: true });
});

test('discovery advertises what Latchkey relies on', async () => {
  const res = await fetch(`${op.issuer}/.well-known/openid-configuration`);
  assert.equal(res.status, 200);
  const d = await res.json();
  assert.equal(d.issuer, op.issuer);
  assert.equal(d.authorization_endpoint, `${op.issuer}/auth`);
  assert.equal(d.token_endpoint, `${op.issuer}/token`);
  assert.equal(d.userinfo_endpoint, `${op.issuer}/me`);
  assert.equal(d.jwks_uri, `${op.issuer}/jwks`);
  assert.equal(d.revocation_endpoint, `${op.issuer}/token/revocation`);
  assert.equal(d.end_session_endpoint, `${op.issuer}/session/end`);
  assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
  assert.equal(d.authorization_response_iss_parameter_supported, true);
  for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA']) assert.ok(d.id_token_signing_alg_values_supported.includes(alg), alg);
  for (const s of ALL_SCOPES.split(' ')) assert.ok(d.scopes_supported.includes(s), s);
  const jwks = await (await fetch(d.jwks_uri)).json();
  assert.equal(jwks.keys.length, 4);
  assert.equal(new Set(jwks.keys.map((k) => k.kid)).size, 4);
  assert.ok(jwks.keys.every((k) => !k.d), 'no private parts published');
  const routes = await dev(op, 'GET', 'routes');
  assert.equal(routes.token, '/token');
});

test('code + PKCE flow via loopback, refresh rotation, replay detection, stats', async () => {
  await dev(op, 'POST', 'reset');
  const log = path.join(TMP, 'driver.log');
  const a = await authorize(op, { env: { DRIVER_LOG: log } });
  assertGoodRedirect(op, a);

  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.event), ['launch', 'done']);
  assert.equal(lines[1].result, 'loopback');
  assert.match(lines[1].redirect, /^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);

  const [req] = await dev(op, 'GET', 'authorization_requests');
  assert.equal(req.prompt, 'consent');
  assert.equal(req.code_challenge_method, 'S256');
  assert.equal(req.nonce, a.nonce);

  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.token_type, 'Bearer');
  assert.ok(t.json.access_token && t.json.id_token && t.json.refresh_token);
  assert.equal(t.json.scope, ALL_SCOPES);
  const idt = await verifyIdToken(op, t.json.id_token);
  assert.equal(idt.header.alg, 'RS256');
  assert.equal(idt.payload.sub, 'alice');
  assert.equal(idt.payload.nonce, a.nonce);
  assert.equal(idt.payload.aud, CLIENT_ID);
  assert.equal(idt.payload.email, undefined, 'conformIdTokenClaims: profile/email only via userinfo');

  // userinfo
  const ui = await (await fetch(`${op.issuer}/me`, { headers: { authorization: `Bearer ${t.json.access_token}` } })).json();
  assert.deepEqual(ui, {
    sub: 'alice', name: 'Alice Example', given_name: 'Alice', family_name: 'Example',
    email: 'alice@example.com', email_verified: true, picture: `${op.issuer}/avatars/alice.png`,
    groups: ['engineering', 'on-call'], entitlements: ['urn:latchkey:entitlement:beta'],
  });
  const pic = await fetch(ui.picture);
  assert.equal(pic.headers.get('content-type'), 'image/png');
  assert.ok(Buffer.from(await pic.arrayBuffer()).subarray(0, 8).equals(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1')));

  // refresh rotates the refresh token
  const r1 = await refresh(op, t.json.refresh_token);
  assert.equal(r1.status, 200, r1.text);
  assert.ok(r1.json.refresh_token);
  assert.notEqual(r1.json.refresh_token, t.json.refresh_token);
  assert.equal((await dev(op, 'POST', 'introspect', { token: r1.json.refresh_token })).active, true);
  const oldState = await dev(op, 'POST', 'introspect', { token: t.json.refresh_token });
  assert.equal(oldState.active, false);
  assert.equal(oldState.consumed, true);

  // replaying the old one fails and revokes the whole grant
  const r2 = await refresh(op, t.json.refresh_token);
  assert.equal(r2.status, 400);
  assert.equal(r2.json.error, 'invalid_grant');
  assert.equal((await dev(op, 'POST', 'introspect', { token: r1.json.refresh_token })).active, false);

  const s = await dev(op, 'GET', 'stats');
  assert.equal(s.authorization_requests, 1);
  assert.equal(s.token_requests.authorization_code, 1);
  assert.equal(s.token_requests.refresh_token, 2);
  assert.equal(s.token_errors.invalid_grant, 1);
  assert.equal(s.userinfo_requests, 1);
  assert.ok(s.jwks_requests >= 1);
  assert.equal(s.interactions.logins, 1);
  assert.equal(s.interactions.consents_approved, 1);
  const tr = await dev(op, 'GET', 'token_requests');
  assert.equal(tr.length, 3);
  assert.ok(tr[0].has_code_verifier && !tr[0].has_client_secret);
});

test('deny gives error=access_denied', async () => {
  const a = await authorize(op, { env: { DRIVER_ACTION: 'deny' } });
  assert.equal(a.driver.code, 0, a.driver.stderr);
  assert.equal(a.params.get('error'), 'access_denied');
  assert.match(a.params.get('error_description'), /denied/);
  assert.equal(a.params.get('state'), a.state);
  assert.equal(a.params.get('code'), null);
});

test('DRIVER_UNCHECK narrows the granted scope', async () => {
  const a = await authorize(op, { env: { DRIVER_UNCHECK: 'profile offline_access' } });
  assertGoodRedirect(op, a);
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.scope, 'openid email api:read');
  assert.equal(t.json.refresh_token, undefined, 'no offline_access, no refresh token');
  const ui = await (await fetch(`${op.issuer}/me`, { headers: { authorization: `Bearer ${t.json.access_token}` } })).json();
  assert.deepEqual(ui, { sub: 'alice', email: 'alice@example.com', email_verified: true });

  // replaying the code is rejected and revokes what it issued
  const replay = await exchangeCode(op, a);
  assert.equal(replay.status, 400);
  assert.equal(replay.json.error, 'invalid_grant');
  assert.equal((await fetch(`${op.issuer}/me`, { headers: { authorization: `Bearer ${t.json.access_token}` } })).status, 401);
});

test('offline_access without prompt=consent yields no refresh token', async () => {
  const a = await authorize(op, { prompt: null, env: { DRIVER_USER: 'bob' } });
  assertGoodRedirect(op, a);
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.refresh_token, undefined);
  assert.equal(decodeJwt(t.json.id_token).payload.sub, 'bob');
});

test('custom-scheme redirect is captured and delivered', async () => {
  const out = path.join(TMP, 'delivered.txt');
  const script = path.join(TMP, 'deliver.sh');
  fs.writeFileSync(script, `#!/bin/sh\nprintf '%s' "$#:$1" > '${out}'\nexit 7\n`);
  const log = path.join(TMP, 'driver-custom.log');
  const a = await authorize(op, { custom: true, env: { DRIVER_DELIVER: `sh ${script}`, DRIVER_LOG: log } });
  assertGoodRedirect(op, a);
  assert.equal(a.redirect.protocol, 'com.example.latchkey:');
  assert.equal(fs.readFileSync(out, 'utf8'), `1:${a.redirect.href}`, 'URL is the one and last argument');
  const done = JSON.parse(fs.readFileSync(log, 'utf8').trim().split('\n').at(-1));
  assert.equal(done.result, 'custom-scheme');
  assert.equal(done.deliver_exit, 7);
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);

  // RFC 7009 revocation by the public client
  const before = (await dev(op, 'GET', 'stats')).revocations;
  const rv = await postForm(`${op.issuer}/token/revocation`, { token: t.json.refresh_token, token_type_hint: 'refresh_token', client_id: CLIENT_ID });
  assert.equal(rv.status, 200, rv.text);
  assert.equal((await dev(op, 'POST', 'introspect', { token: t.json.refresh_token })).active, false);
  assert.equal((await dev(op, 'GET', 'stats')).revocations, before + 1);
});

test('fault injection: status and delay', async () => {
  await dev(op, 'POST', 'reset');
  await dev(op, 'POST', 'fault', { path: '/token', status: 503, count: 1 });
  const f1 = await postForm(`${op.issuer}/token`, { grant_type: 'refresh_token', refresh_token: 'x', client_id: CLIENT_ID });
  assert.equal(f1.status, 503);
  assert.deepEqual(f1.json, { error: 'temporarily_unavailable' });
  const f2 = await postForm(`${op.issuer}/token`, { grant_type: 'refresh_token', refresh_token: 'x', client_id: CLIENT_ID });
  assert.equal(f2.status, 400);
  assert.equal(f2.json.error, 'invalid_grant');

  await dev(op, 'POST', 'fault', { path: '/jwks', status: 500, body: { oops: true }, count: -1 });
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${op.issuer}/jwks`);
    assert.equal(r.status, 500);
    assert.deepEqual(await r.json(), { oops: true });
  }

  await dev(op, 'POST', 'fault', { path: '/me', delay_ms: 5000 });
  await assert.rejects(fetch(`${op.issuer}/me`, { signal: AbortSignal.timeout(300) }), /abort|timeout/i);

  const s = await dev(op, 'GET', 'stats');
  assert.equal(s.token_requests.refresh_token, 1, 'faulted requests are not counted as handled');
  assert.equal(s.token_errors.invalid_grant, 1);
  assert.deepEqual(s.faults_served, { '/token': 1, '/jwks': 2, '/me': 1 });
  await dev(op, 'POST', 'reset');
  assert.equal((await fetch(`${op.issuer}/jwks`)).status, 200, 'reset clears faults');
});

test('key rotation and grant revocation', async () => {
  const a = await authorize(op);
  assertGoodRedirect(op, a);
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  const oldKid = decodeJwt(t.json.id_token).header.kid;

  const rot = await dev(op, 'POST', 'rotate_keys');
  assert.ok(!rot.keys.some((k) => k.kid === oldKid));
  const jwks = await (await fetch(`${op.issuer}/jwks`)).json();
  assert.ok(!jwks.keys.some((k) => k.kid === oldKid), 'old kid gone from JWKS');

  // tokens and grants survive the rotation; new ID tokens use the new key
  const r = await refresh(op, t.json.refresh_token);
  assert.equal(r.status, 200, r.text);
  const idt = await verifyIdToken(op, r.json.id_token);
  assert.notEqual(idt.header.kid, oldKid);

  const rv = await dev(op, 'POST', 'revoke_grants', { sub: 'alice' });
  assert.ok(rv.revoked_grants >= 1);
  assert.equal((await dev(op, 'POST', 'introspect', { token: r.json.refresh_token })).active, false);
  const r2 = await refresh(op, r.json.refresh_token);
  assert.equal(r2.status, 400);
  assert.equal(r2.json.error, 'invalid_grant');
});

test('DRIVER_PROFILE_DIR keeps the provider session: second login is skipped', async () => {
  const profile = path.join(TMP, 'profile');
  const a1 = await authorize(op, { env: { DRIVER_PROFILE_DIR: profile } });
  assertGoodRedirect(op, a1);
  const s1 = await dev(op, 'GET', 'stats');
  const a2 = await authorize(op, { env: { DRIVER_PROFILE_DIR: profile } });
  assertGoodRedirect(op, a2);
  const s2 = await dev(op, 'GET', 'stats');
  assert.equal(s2.interactions.login_pages, s1.interactions.login_pages, 'no login page the second time');
  assert.equal(s2.interactions.consent_pages, s1.interactions.consent_pages + 1, 'native clients always get consent');
});

test('wrong password makes the driver fail with a reason', async () => {
  const shots = path.join(TMP, 'shots');
  const a = await authorize(op, { env: { DRIVER_PASSWORD: 'wrong', DRIVER_SCREENSHOT_DIR: shots } });
  assert.equal(a.driver.code, 1);
  assert.match(a.driver.stderr, /^driver: login rejected: Invalid username or password/m);
  assert.equal(fs.readdirSync(shots).filter((f) => f.endsWith('.png')).length, 1);
  const u = await authorize(op, { env: { DRIVER_USER: 'mallory' } });
  assert.equal(u.driver.code, 1);
  assert.match(u.driver.stderr, /Unknown user/);
});

test('RP-initiated logout redirects to the custom scheme', async () => {
  const a = await authorize(op, { scope: 'openid' });
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  const capture = path.join(TMP, 'logout-capture');
  const u = new URL(`${op.issuer}/session/end`);
  u.searchParams.set('id_token_hint', t.json.id_token);
  u.searchParams.set('post_logout_redirect_uri', 'com.example.latchkey:/logout');
  u.searchParams.set('state', 'bye');
  const d = await runDriver(u.href, { DRIVER_CAPTURE: capture });
  assert.equal(d.code, 0, d.stderr);
  const back = new URL(fs.readFileSync(capture, 'utf8').trim());
  assert.equal(`${back.protocol}${back.pathname}`, 'com.example.latchkey:/logout');
  assert.equal(back.searchParams.get('state'), 'bye');
});

test('DRIVER_ACTION=none holds the page open, then exits', async () => {
  const log = path.join(TMP, 'driver-none.log');
  const t0 = Date.now();
  const { verifier: _v, challenge } = pkce();
  const url = authUrl(op.issuer, {
    client_id: CLIENT_ID, response_type: 'code', redirect_uri: 'http://127.0.0.1:9/callback', scope: 'openid',
    state: 's', code_challenge: challenge, code_challenge_method: 'S256',
  });
  const d = await runDriver(url, { DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '1500', DRIVER_LOG: log });
  assert.equal(d.code, 0, d.stderr);
  assert.ok(Date.now() - t0 >= 1500);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.event), ['launch', 'done']);
});

for (const alg of ['PS256', 'ES256', 'EdDSA']) {
  test(`DEV_ID_TOKEN_ALG=${alg}`, async () => {
    const p = await startProvider({ DEV_ID_TOKEN_ALG: alg, DEV_ACCESS_TOKEN_TTL: '2' });
    try {
      const a = await authorize(p, { scope: 'openid' });
      assertGoodRedirect(p, a);
      const t = await exchangeCode(p, a);
      assert.equal(t.status, 200, t.text);
      assert.equal(t.json.expires_in, 2);
      const idt = await verifyIdToken(p, t.json.id_token);
      assert.equal(idt.header.alg, alg);
    } finally {
      assert.equal(await stopProvider(p), 0, 'clean exit on SIGTERM');
    }
  });
}

test('a sign-in for the API resource: a JWT access token with authorization claims, accepted at userinfo', async () => {
  await dev(op, 'POST', 'reset');
  const a = await authorize(op, { extra: { resource: 'urn:latchkey:api' } });
  assertGoodRedirect(op, a);
  const t = await exchangeCode(op, a);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.scope, 'api:read', 'the access token is for the API only');
  const at = await verifyIdToken(op, t.json.access_token); // same JWKS, same check
  assert.equal(at.header.typ, 'at+jwt');
  assert.equal(at.payload.aud, 'urn:latchkey:api');
  assert.equal(at.payload.scope, 'api:read');
  assert.deepEqual(at.payload.scp, ['api:read']);
  assert.deepEqual(at.payload.realm_access.roles, ['offline_access', 'developer']);
  assert.deepEqual(at.payload.resource_access[CLIENT_ID].roles, ['reader']);
  assert.deepEqual(at.payload['https://latchkey.example/roles'], ['admin']);
  assert.deepEqual(at.payload.permissions, ['read:reports', 'export:reports']);
  assert.deepEqual(at.payload.wids, ['62e90394-69f5-4237-9190-012177145e10']);
  // The token cannot be used at oidc-provider's userinfo, so the ID token has the profile.
  const idt = await verifyIdToken(op, t.json.id_token);
  assert.equal(idt.payload.name, 'Alice Example');
  assert.deepEqual(idt.payload.groups, ['engineering', 'on-call']);

  const me = async (token) => fetch(`${op.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  const ui = await (await me(t.json.access_token)).json();
  assert.equal(ui.sub, 'alice');
  assert.deepEqual(ui.entitlements, ['urn:latchkey:entitlement:beta']);
  // Flip a character in the middle of the signature: the last base64url character may carry
  // only padding bits, so changing it can leave the signature valid (this failed CI once).
  const [h, p, s] = t.json.access_token.split('.');
  const mid = s.length >> 1;
  const forged = `${h}.${p}.${s.slice(0, mid)}${s[mid] === 'A' ? 'B' : 'A'}${s.slice(mid + 1)}`;
  assert.equal((await me(forged)).status, 401);

  // The refresh stays on the API, and a changed profile shows at userinfo.
  const r = await refresh(op, t.json.refresh_token);
  assert.equal(r.status, 200, r.text);
  assert.equal(decodeJwt(r.json.access_token).payload.aud, 'urn:latchkey:api');
  const changed = await dev(op, 'POST', 'users/alice', { name: 'Alice Renamed' });
  assert.equal(changed.user.name, 'Alice Renamed');
  try {
    assert.equal((await (await me(r.json.access_token)).json()).name, 'Alice Renamed');
  } finally {
    await dev(op, 'POST', 'users/alice', { name: 'Alice Example' });
  }
  const bad = await fetch(`${op.issuer}/__dev/users/alice`, { method: 'POST', body: '{"sub":"mallory"}' });
  assert.equal(bad.status, 400);
  // Revoking the grant ends userinfo with its tokens.
  await dev(op, 'POST', 'revoke_grants', { sub: 'alice' });
  assert.equal((await me(r.json.access_token)).status, 401);
  assert.equal((await dev(op, 'GET', 'stats')).userinfo_requests, 4);
});
