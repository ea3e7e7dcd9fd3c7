// Writes the fuzzers' seeds (tests/fuzz/seeds/) from real answers of the dev provider
// (tests/provider/server.mjs) and real requests of a real browser (tests/browser/driver.mjs,
// headless Chromium), and the fixture the fuzzers run against (seeds/fixture.json: the
// provider's discovery document and JWKS, the clock, the nonce, the code and the access token
// of the sign-ins below, so the captured ID tokens verify in the fuzzers).
//
// Three sign-ins as alice: the code flow to a loopback listener (its GET, the token response,
// userinfo, a refresh, a replayed code and refresh token), the hybrid flow by form POST to the
// listener (the POST, the front-channel ID token) and the hybrid flow in the fragment of the
// app's scheme (argv). Each seed file starts with the flag byte its target reads, where it has
// one (see crates/latchkey-core/src/fuzzing.rs).
//
// Usage: tests/fuzz/seed-from-provider (needs `cd tests && npm ci` and /usr/bin/chromium).

import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launchProvider } from '../provider/launch.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const SEEDS = path.join(HERE, 'seeds');
const DRIVER = path.join(ROOT, 'tests/browser/driver.mjs');
const CLIENT_ID = 'latchkey-desktop';
const NONCE = 'fuzz-nonce-0123456789abcdef';
const SCHEME_REDIRECT = 'com.example.latchkey:/callback';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = () => b64url(crypto.randomBytes(24));

function write(target, name, flag, body) {
  const dir = path.join(SEEDS, target);
  fs.mkdirSync(dir, { recursive: true });
  const parts = [];
  if (flag !== null) parts.push(Buffer.from([flag]));
  parts.push(Buffer.isBuffer(body) ? body : Buffer.from(body));
  fs.writeFileSync(path.join(dir, name), Buffer.concat(parts));
}

const NUL = Buffer.from([0]);
const join = (...parts) => Buffer.concat(parts.flatMap((p, i) => (i ? [NUL, Buffer.from(p)] : [Buffer.from(p)])));

/** A loopback listener that keeps each raw request to /callback (head and body), answers 200. */
function listener() {
  const requests = [];
  const waiters = [];
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      if (!/^(GET|POST) \/callback[ ?]/.test(head)) return;
      requests.push(buf);
      waiters.shift()?.(buf);
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        next: () => (requests.length ? Promise.resolve(requests.shift()) : new Promise((r) => waiters.push(r))),
        close: () => server.close(),
      });
    });
  });
}

function drive(url, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DRIVER, url], {
      env: { ...process.env, DRIVER_USER: 'alice', DRIVER_TIMEOUT_MS: '60000', ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`driver exit ${code}`))));
    child.on('error', reject);
  });
}

function authUrl(issuer, params) {
  const u = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({ client_id: CLIENT_ID, scope: 'openid profile email offline_access', nonce: NONCE, prompt: 'consent', ...params })) {
    u.searchParams.set(k, v);
  }
  return u.toString();
}

function pkce() {
  const verifier = random() + random();
  return { verifier, challenge: b64url(crypto.createHash('sha256').update(verifier).digest()) };
}

async function post(url, form, headers = {}) {
  const r = await fetch(url, { method: 'POST', body: new URLSearchParams(form), headers });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

const main = async () => {
  const { child, issuer } = await launchProvider();
  const lo = await listener();
  try {
    const get = async (p) => Buffer.from(await (await fetch(`${issuer}${p}`)).arrayBuffer());
    const metadataRaw = await get('/.well-known/openid-configuration');
    const metadata = JSON.parse(metadataRaw);
    const jwksRaw = await get(new URL(metadata.jwks_uri).pathname);
    write('discovery', 'dev-provider', null, join(metadataRaw, jwksRaw));
    write('discovery', 'metadata-only', null, metadataRaw);

    // 1. The code flow to the loopback listener.
    const redirect = `http://127.0.0.1:${lo.port}/callback`;
    const p1 = pkce();
    const state1 = random();
    await drive(authUrl(issuer, { response_type: 'code', redirect_uri: redirect, state: state1, code_challenge: p1.challenge, code_challenge_method: 'S256' }));
    const get1 = await lo.next();
    write('loopback', 'get-callback', 0xff, get1);
    write('loopback', 'get-callback-bytewise', 0x00, get1);
    const target = get1.toString('latin1').split(' ')[1];
    const callbackUrl = `http://127.0.0.1:${lo.port}${target}`;
    write('callback', 'code-redirect', null, callbackUrl);
    const code1 = new URL(callbackUrl).searchParams.get('code');
    const tokenEndpoint = metadata.token_endpoint;
    const exchange = { grant_type: 'authorization_code', code: code1, redirect_uri: redirect, client_id: CLIENT_ID, code_verifier: p1.verifier };
    const t1 = await post(tokenEndpoint, exchange);
    if (t1.status !== 200) throw new Error(`token exchange: ${t1.status} ${t1.body}`);
    write('token_response', 'code-exchange', 0x00, t1.body);
    write('token_response', 'code-exchange-dpop-sent', 0x10, t1.body);
    const tokens1 = JSON.parse(t1.body);
    write('id_token', 'token-endpoint', 0x04, tokens1.id_token);
    write('id_token', 'token-endpoint-claims', 0x05, Buffer.from(tokens1.id_token.split('.')[1], 'base64url'));

    const me = await fetch(metadata.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens1.access_token}` } });
    const meBody = Buffer.from(await me.arrayBuffer());
    write('userinfo', 'me', 0x00, meBody);
    // The whole sign-in: `$ID` stands for the ID token, which the target signs for each
    // sign-in's own nonce.
    const signInBody = JSON.stringify({ ...tokens1, id_token: '$ID' });
    write('sign_in', 'code-flow', 0x00, join(signInBody, meBody));
    write('sign_in', 'code-flow-dpop', 0x04, join(JSON.stringify({ ...tokens1, id_token: '$ID', token_type: 'DPoP' }), meBody));
    write('sign_in', 'code-flow-no-userinfo-body', 0x00, signInBody);
    const bad = await fetch(metadata.userinfo_endpoint, { headers: { authorization: 'Bearer not-a-token' } });
    write('userinfo', 'invalid-token', 0x02, Buffer.from(await bad.arrayBuffer()));

    const refresh = { grant_type: 'refresh_token', refresh_token: tokens1.refresh_token, client_id: CLIENT_ID };
    const t2 = await post(tokenEndpoint, refresh);
    if (t2.status !== 200) throw new Error(`refresh: ${t2.status} ${t2.body}`);
    write('token_response', 'refresh', 0x08, t2.body);
    const tokens2 = JSON.parse(t2.body);
    if (tokens2.id_token) write('id_token', 'refreshed', 0x00, tokens2.id_token);
    const t3 = await post(tokenEndpoint, refresh); // the rotated-out refresh token
    write('token_response', 'refresh-replayed', 0x09, t3.body);
    // Last: a replayed code revokes the grant (and so the refresh token above).
    const replay = await post(tokenEndpoint, exchange);
    write('token_response', 'replayed-code', 0x01, replay.body);
    write('sign_in', 'invalid-grant', 0x01, replay.body);

    // 2. The hybrid flow by form POST to the listener.
    const p2 = pkce();
    await drive(authUrl(issuer, { response_type: 'code id_token', response_mode: 'form_post', redirect_uri: redirect, state: random(), code_challenge: p2.challenge, code_challenge_method: 'S256' }));
    const post2 = await lo.next();
    write('loopback', 'form-post', 0xff, post2);
    write('loopback', 'form-post-small-reads', 0x06, post2);
    const split = post2.indexOf('\r\n\r\n');
    const form = post2.subarray(split + 4);
    write('callback', 'form-post', null, join(redirect, form));
    const fields = new URLSearchParams(form.toString());
    const hybridCode = fields.get('code');
    write('id_token', 'front-channel', 0x06, fields.get('id_token'));
    write('id_token', 'front-channel-claims', 0x07, Buffer.from(fields.get('id_token').split('.')[1], 'base64url'));

    // 3. The hybrid flow in the fragment of the app's scheme, as argv.
    const capture = path.join(fs.mkdtempSync(path.join(ROOT, 'tests/fuzz/.seed-')), 'url');
    try {
      const p3 = pkce();
      await drive(authUrl(issuer, { response_type: 'code id_token', redirect_uri: SCHEME_REDIRECT, state: random(), code_challenge: p3.challenge, code_challenge_method: 'S256' }), { DRIVER_CAPTURE: capture });
      const deep = fs.readFileSync(capture, 'utf8').trim();
      write('deep_link', 'lone-url', null, deep);
      write('deep_link', 'among-flags', null, join('--minimized', deep, 'COM.EXAMPLE.LATCHKEY:/callback?state=x'));
      write('callback', 'fragment', null, deep);
    } finally {
      fs.rmSync(path.dirname(capture), { recursive: true, force: true });
    }

    // The vault: the session these tokens make, in the stored format (LK1 header, chunks).
    const now = Math.floor(Date.now() / 1000);
    const iso = (s) => new Date(s * 1000).toISOString();
    const session = JSON.stringify({
      v: 1, issuer, client_id: CLIENT_ID, profile: 'default', access_token: tokens1.access_token,
      expires_at: iso(now + tokens1.expires_in), issued_at: iso(now), refresh_token: tokens2.refresh_token ?? tokens1.refresh_token,
      id_token: tokens1.id_token, requested_scopes: ['openid', 'profile', 'email', 'offline_access'],
      granted_scopes: tokens1.scope.split(' '),
      claims: { sub: 'alice', aud: [CLIENT_ID], azp: null, name: 'Alice Example', email: 'alice@example.com', email_verified: null, picture: null, preferred_username: null },
      signed_in_at: iso(now), endpoints: { token: tokenEndpoint, revocation: metadata.revocation_endpoint, end_session: metadata.end_session_endpoint, userinfo: metadata.userinfo_endpoint },
      flow: 'code', token_type: 'Bearer', dpop_jkt: null, par: false,
    });
    write('vault', 'one-entry', null, `LK1 AbCdEfGhIjKl 1\n${session}`);
    const third = Math.ceil(session.length / 3);
    write('vault', 'three-chunks', null, join(`LK1 AbCdEfGhIjKl 3\n${session.slice(0, third)}`, session.slice(third, 2 * third), session.slice(2 * third)));
    write('vault', 'missing-chunk', null, `LK1 AbCdEfGhIjKl 3\n${session.slice(0, third)}`);

    fs.writeFileSync(path.join(SEEDS, 'fixture.json'), `${JSON.stringify({
      issuer, client_id: CLIENT_ID, now, nonce: NONCE, code: hybridCode, access_token: tokens1.access_token,
      scheme: new URL(SCHEME_REDIRECT).protocol.slice(0, -1),
      metadata, jwks: JSON.parse(jwksRaw),
    }, null, 2)}\n`);
    console.log(`seeds written to ${path.relative(ROOT, SEEDS)} from ${issuer}`);
  } finally {
    lo.close();
    child.kill('SIGTERM');
  }
};

main().catch((e) => { console.error(`seed-from-provider: ${e.stack ?? e}`); process.exit(1); });
