#!/usr/bin/env node
// Latchkey dev identity provider for integration tests.
//
// A real OpenID Provider (panva's oidc-provider 9, OpenID Certified) with
// its own login/consent pages, a public native client `latchkey-desktop`,
// and a small admin API under /__dev/ for tests (stats, fault injection,
// key rotation, grant revocation). Listens on 127.0.0.1 only.
//
//   node tests/provider/server.mjs [--port N]     (env DEV_PORT; 0 = ephemeral)
//
// Prints exactly one line `READY http://127.0.0.1:<port>` to stdout once it
// is listening; everything else goes to stderr. With DEV_TLS_CERT and
// DEV_TLS_KEY (PEM files) it serves HTTPS instead, and the issuer and the
// READY line are `https://127.0.0.1:<port>`. See tests/README.md.
//
// Routes oidc-provider serves (pinned explicitly in `ROUTES` below):
//   discovery      GET  /.well-known/openid-configuration
//   jwks           GET  /jwks
//   authorization  GET|POST /auth            (resume: /auth/:uid, internal)
//   token          POST /token
//   userinfo       GET|POST /me
//   revocation     POST /token/revocation
//   introspection  POST /token/introspection (needs client auth; tests use /__dev/introspect)
//   end_session    GET|POST /session/end      (+ /session/end/confirm, /session/end/success)
//   interactions   /interaction/:uid          (our own login/consent pages)

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

// Start-up stamps go to stderr even when quiet: a start that stalls then says where (the test
// harness prints this log when no READY line comes).
const T0 = performance.now();
const stamp = (what) => process.stderr.write(`[provider start] ${what} at +${Math.round(performance.now() - T0)} ms\n`);
stamp('node running');

// ---------------------------------------------------------------- console
// oidc-provider prints notices with console.info (stdout) and warnings with
// console.warn. stdout is reserved for the READY line, so route everything to
// stderr and drop the "unsupported runtime" warning (Node 20 works fine).
const errWrite = (...a) => process.stderr.write(`${a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ')}\n`);
const NOISE = [/Unsupported runtime/];
console.log = errWrite;
console.info = errWrite;
console.warn = (...a) => {
  const s = a.map(String).join(' ');
  if (NOISE.some((re) => re.test(s))) return;
  errWrite(...a);
};

const { default: Provider, errors: OidcErrors } = await import('oidc-provider');
stamp('oidc-provider loaded');

// ---------------------------------------------------------------- config
const { values: argv } = parseArgs({
  options: { port: { type: 'string' } },
  allowPositionals: true,
});
const PORT = Number(argv.port ?? process.env.DEV_PORT ?? 0);
const envInt = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return Math.floor(n);
};
const ACCESS_TOKEN_TTL = envInt('DEV_ACCESS_TOKEN_TTL', 3600);
const ID_TOKEN_TTL = envInt('DEV_ID_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = envInt('DEV_REFRESH_TOKEN_TTL', 14 * 24 * 3600);
const SESSION_TTL = envInt('DEV_SESSION_TTL', 14 * 24 * 3600);
const ID_TOKEN_ALG = process.env.DEV_ID_TOKEN_ALG || 'RS256';
const QUIET = process.env.DEV_QUIET === '1';
const LOGOUT_AUTO_SUBMIT = process.env.DEV_LOGOUT_AUTO_SUBMIT !== '0';
// Pushed authorization requests (RFC 9126): `off` (no endpoint in discovery, the default, so the
// suites that read /__dev/authorization_requests see the whole front-channel request), `on`, or
// `required` (require_pushed_authorization_requests: true).
const PAR = process.env.DEV_PAR || 'off';
if (!['off', 'on', 'required'].includes(PAR)) throw new Error(`DEV_PAR must be off, on or required, got ${PAR}`);
// DPoP (RFC 9449): `off` (the default: discovery lists no dpop_signing_alg_values_supported, so
// the suites whose tools present Bearer tokens keep getting them), `on`, or `nonce` (every proof
// must carry a server nonce: the first one gets use_dpop_nonce and a DPoP-Nonce header).
// DEV_DPOP_ALGS overrides the algorithms offered (e.g. EdDSA only, so ES256 is not).
const DPOP = process.env.DEV_DPOP || 'off';
if (!['off', 'on', 'nonce'].includes(DPOP)) throw new Error(`DEV_DPOP must be off, on or nonce, got ${DPOP}`);
const DPOP_ALGS = (process.env.DEV_DPOP_ALGS || 'ES256,EdDSA').split(',').map((a) => a.trim()).filter(Boolean);
const DPOP_NONCE_SECRET = crypto.randomBytes(32);
// The device flow (RFC 8628): the device code's lifetime, and an `interval` to add to the device
// authorization response (oidc-provider sends none, so clients use the RFC's 5 s).
const DEVICE_CODE_TTL = envInt('DEV_DEVICE_CODE_TTL', 600);
const DEVICE_INTERVAL = process.env.DEV_DEVICE_INTERVAL ? envInt('DEV_DEVICE_INTERVAL', 5) : undefined;
// Client authentication methods the token endpoint offers (token_endpoint_auth_methods_supported).
// The client with a secret is registered with the first secret method listed, basic before post.
const CLIENT_AUTH_METHODS = (process.env.DEV_CLIENT_AUTH_METHODS || 'client_secret_basic,client_secret_post,none')
  .split(',').map((m) => m.trim()).filter(Boolean);
const SECRET_METHOD = ['client_secret_basic', 'client_secret_post'].find((m) => CLIENT_AUTH_METHODS.includes(m));
const SUPPORTED_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
if (!SUPPORTED_ALGS.includes(ID_TOKEN_ALG)) {
  throw new Error(`DEV_ID_TOKEN_ALG must be one of ${SUPPORTED_ALGS.join(', ')}`);
}

const CLIENT_ID = 'latchkey-desktop';
// An "installed app" client with a secret, as Google issues: the secret ships with the app.
const SECRET_CLIENT_ID = 'latchkey-installed';
const SECRET_CLIENT_SECRET = 'installed-app-secret-not-confidential';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'api:read'];
// The one resource server (RFC 8707): a sign-in that asks for it (`resource=urn:latchkey:api` at
// /auth) gets a JWT access token for it (RFC 9068) carrying the authorization claims below.
const API_RESOURCE = 'urn:latchkey:api';
const API_SCOPES = 'api:read';
// Which claims each scope releases (at userinfo, and in the ID token when the access token is
// for the API and so cannot be used at userinfo by oidc-provider's rules).
const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name', 'picture', 'groups', 'entitlements'],
  email: ['email', 'email_verified'],
};
const ROUTES = {
  authorization: '/auth',
  token: '/token',
  userinfo: '/me',
  jwks: '/jwks',
  revocation: '/token/revocation',
  introspection: '/token/introspection',
  end_session: '/session/end',
  code_verification: '/device',
  device_authorization: '/device/auth',
  pushed_authorization_request: '/request',
  // unused features keep their defaults
  backchannel_authentication: '/backchannel',
  registration: '/reg',
  challenge: '/challenge',
  credential: '/credential',
};
const PUBLIC_ROUTES = {
  discovery: '/.well-known/openid-configuration',
  jwks: ROUTES.jwks,
  authorization: ROUTES.authorization,
  token: ROUTES.token,
  userinfo: ROUTES.userinfo,
  revocation: ROUTES.revocation,
  introspection: ROUTES.introspection,
  end_session: ROUTES.end_session,
  interaction: '/interaction/:uid',
  device_authorization: ROUTES.device_authorization,
  code_verification: ROUTES.code_verification,
  pushed_authorization_request: ROUTES.pushed_authorization_request,
};

const log = (...a) => errWrite(`[provider ${new Date().toISOString()}]`, ...a);

// ---------------------------------------------------------------- accounts
const ACCOUNTS = {
  alice: {
    sub: 'alice', name: 'Alice Example', given_name: 'Alice', family_name: 'Example',
    email: 'alice@example.com', email_verified: true,
    groups: ['engineering', 'on-call'], entitlements: ['urn:latchkey:entitlement:beta'],
  },
  bob: {
    sub: 'bob', name: 'Bob Example', given_name: 'Bob', family_name: 'Example',
    email: 'bob@example.com', email_verified: true,
    groups: ['staff'],
  },
};
// What POST /__dev/users/<id> may change.
const EDITABLE = new Set(['name', 'given_name', 'family_name', 'email', 'email_verified', 'groups', 'entitlements']);

// The authorization claims of each account's API access token, in the shapes real providers
// use: Keycloak (realm_access, resource_access), Entra ID (roles, wids, scp), Okta (groups,
// scp as an array), Auth0 (permissions, a namespaced roles claim).
const API_CLAIMS = {
  alice: {
    realm_access: { roles: ['offline_access', 'developer'] },
    resource_access: { [CLIENT_ID]: { roles: ['reader'] }, 'orders-api': { roles: ['orders:write'] } },
    roles: ['Orders.Approver'],
    groups: ['engineering'],
    permissions: ['read:reports', 'export:reports'],
    'https://latchkey.example/roles': ['admin'],
    wids: ['62e90394-69f5-4237-9190-012177145e10'],
    scp: API_SCOPES.split(' '),
  },
  bob: {
    realm_access: { roles: ['offline_access'] },
    scp: API_SCOPES.split(' '),
  },
};
// jti of each API access token issued -> its grant, for userinfo with such a token (below).
const apiTokenGrants = new Map();

// alice has a profile picture, served by this server like a CDN would (GET /avatars/alice.png);
// bob has none, so clients show their fallback.
const PICTURES = {
  alice: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAMAAABg3Am1AAAACVBMVEV7XNaFaNnt6P1z/Z98AAAAkklEQVRIx+2UUQ6AIAxD197/0IomKkjoSvzR2O8+RjdGxK/PCK4fARYBORS7fUNyAC9K+FlLJkIDyBxslQ6cCo4OIErw/YDbpXWsJtCbNDwglJpLSX9M7MNxL3dVH1Fyy6uejM5IfRvlk8E5NE00r0kh9uNjT4PzSY8gPYL0CAwAmAW6JUCToAnABYT/HlsBnAUWaloFYGIyyjMAAAAASUVORK5CYII=', 'base64'),
};

async function findAccount(_ctx, id) {
  const acct = ACCOUNTS[id];
  if (!acct) return undefined;
  return {
    accountId: id,
    async claims() {
      return PICTURES[id] ? { ...acct, picture: `${issuer}/avatars/${id}.png` } : { ...acct };
    },
  };
}

// ---------------------------------------------------------------- keys
let keyGeneration = 0;
function generateKeys() {
  keyGeneration += 1;
  const tag = `${keyGeneration}-${crypto.randomBytes(3).toString('hex')}`;
  const jwk = (kp, alg) => ({ ...kp.privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-${tag}`, alg, use: 'sig' });
  return [
    // the first key of the configured alg is what signs ID tokens; order does not matter
    jwk(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }), 'RS256'),
    jwk(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }), 'PS256'),
    jwk(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ES256'),
    jwk(crypto.generateKeyPairSync('ed25519'), 'EdDSA'),
  ];
}
const publicKid = (keys) => keys.map((k) => ({ kid: k.kid, alg: k.alg }));

// ---------------------------------------------------------------- storage
// Own in-memory adapter (shared by every Provider instance, so rotating keys
// by recreating the provider keeps sessions, grants and tokens) that can also
// enumerate grants by account for /__dev/revoke_grants.
const store = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set(storeKey)
const uidIndex = new Map(); // session uid -> storeKey
const userCodeIndex = new Map();
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

function storeGet(key) {
  const e = store.get(key);
  if (!e) return undefined;
  if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e;
}

class DevAdapter {
  constructor(name) { this.name = name; }

  key(id) { return `${this.name}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, {
      payload: structuredClone(payload),
      expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined,
    });
    if (this.name === 'Session' && payload.uid) uidIndex.set(payload.uid, key);
    if (payload.userCode) userCodeIndex.set(payload.userCode, key);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    const e = storeGet(this.key(id));
    return e ? structuredClone(e.payload) : undefined;
  }

  async findByUid(uid) {
    const key = uidIndex.get(uid);
    const e = key && storeGet(key);
    return e ? structuredClone(e.payload) : undefined;
  }

  async findByUserCode(userCode) {
    const key = userCodeIndex.get(userCode);
    const e = key && storeGet(key);
    return e ? structuredClone(e.payload) : undefined;
  }

  async consume(id) {
    const e = storeGet(this.key(id));
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    revokeGrantMembers(grantId);
  }
}

function revokeGrantMembers(grantId) {
  for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
  grantMembers.delete(grantId);
}

function grantsOf(accountId) {
  const out = [];
  for (const [key, e] of store) {
    if (key.startsWith('Grant:') && e.payload.accountId === accountId) out.push(key.slice('Grant:'.length));
  }
  return out;
}

// ---------------------------------------------------------------- stats & faults
function freshStats() {
  return {
    authorization_requests: 0,
    token_requests: { authorization_code: 0, refresh_token: 0 },
    token_errors: {},
    revocations: 0,
    userinfo_requests: 0,
    discovery_requests: 0,
    jwks_requests: 0,
    end_session_requests: 0,
    picture_requests: 0,
    interactions: { login_pages: 0, logins: 0, login_failures: 0, consent_pages: 0, consents_approved: 0, consents_denied: 0, device_confirm_pages: 0 },
    par_requests: 0,
    device_authorizations: 0,
    faults_served: {},
    tampers_served: {},
  };
}
let stats = freshStats();
let authorizationRequests = [];
let tokenRequests = [];
let parRequests = [];
let userinfoRequests = [];
// Every request outside /__dev/: method, path (never the query, which may carry a code) and the
// peer's address, so a test can tell which requests came through a proxy bound to another
// loopback address.
let requests = [];
let faults = []; // { path, method?, status?, body?, headers?, delay_ms?, remaining }
// Test-only tampering with what the provider answers (POST /__dev/tamper): an ID token re-signed
// with the provider's own key after claims are changed, or the form_post page's form changed, so
// a test can prove the client refuses a well-signed but wrong response.
let tampers = []; // { at, id_token?: { set?, unset? }, response?: { set? }, form?: { method?, enctype?, set? }, remaining }

// ---------------------------------------------------------------- html
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const SCOPE_TEXT = {
  openid: 'Sign you in (required)',
  profile: 'Your name',
  email: 'Your email address',
  offline_access: 'Stay signed in (refresh tokens)',
  'api:read': 'Read access to the API',
};
function page(title, body, extraHead = '') {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}label{display:block;margin:.5em 0}.error{color:#b00020}button{margin:.5em .5em 0 0;padding:.4em 1em}</style>
${extraHead}</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

function loginPage(uid, details, error, login) {
  const client = details.params.client_id;
  return page('Sign in - Latchkey Dev IdP', `<h1>Sign in</h1>
<p>to continue to <strong>${esc(client)}</strong></p>
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label>Username <input name="login" id="login" required autofocus value="${esc(login ?? details.params.login_hint ?? '')}"></label>
<label>Password <input name="password" id="password" type="password" required></label>
<button type="submit" id="submit">Sign in</button>
</form>
<p><small>Dev users: alice, bob. Any password except "wrong".</small></p>`);
}

function consentPage(uid, details, requested) {
  const items = requested.map((s) => {
    const required = s === 'openid';
    return `<li><label><input type="checkbox" name="scope" value="${esc(s)}" checked${required ? ' disabled' : ''}> <code>${esc(s)}</code> &ndash; ${esc(SCOPE_TEXT[s] ?? s)}</label>${required ? `<input type="hidden" name="scope" value="openid">` : ''}</li>`;
  }).join('\n');
  return page('Authorize - Latchkey Dev IdP', `<h1>Authorize ${esc(details.params.client_id)}</h1>
<p>Signed in as <strong id="account">${esc(details.session?.accountId)}</strong>. The application is asking for:</p>
<form method="post" action="/interaction/${esc(uid)}/confirm">
<ul id="scopes">
${items}
</ul>
<button type="submit" id="approve" name="decision" value="allow">Allow</button>
<button type="submit" id="deny" name="decision" value="deny" formnovalidate>Deny</button>
</form>`);
}

// ---------------------------------------------------------------- provider
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];
let issuer; // set once listening
let signingKeys = generateKeys();
stamp('signing keys generated');
let provider;
let providerCallback;

const ERROR_EVENTS = [
  'authorization.error', 'backchannel.error', 'jwks.error', 'discovery.error', 'end_session.error',
  'grant.error', 'introspection.error', 'pushed_authorization_request.error', 'registration_create.error',
  'registration_read.error', 'registration_update.error', 'registration_delete.error', 'revocation.error',
  'userinfo.error', 'check_session.error', 'code_verification.error', 'device_authorization.error',
];

function buildProvider() {
  const p = new Provider(issuer, {
    // The default set, named: code, the hybrid `code id_token` and the implicit `id_token`.
    responseTypes: ['code', 'code id_token', 'id_token', 'none'],
    adapter: DevAdapter,
    findAccount,
    clients: [{
      client_id: CLIENT_ID,
      client_name: 'Latchkey',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
      // The hybrid flow (OIDC Core §3.3) and the implicit flow's sign-in only `id_token` (§3.2);
      // oidc-provider adds the `implicit` grant type these need.
      response_types: ['code', 'code id_token', 'id_token'],
      redirect_uris: ['com.example.latchkey:/callback', 'http://127.0.0.1/callback'],
      post_logout_redirect_uris: ['com.example.latchkey:/logout', 'http://127.0.0.1/logout'],
      id_token_signed_response_alg: ID_TOKEN_ALG,
    }, ...(SECRET_METHOD ? [{
      client_id: SECRET_CLIENT_ID,
      client_secret: SECRET_CLIENT_SECRET,
      client_name: 'Latchkey (installed app)',
      application_type: 'native',
      token_endpoint_auth_method: SECRET_METHOD,
      grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1/logout'],
      id_token_signed_response_alg: ID_TOKEN_ALG,
    }] : []), {
      // The template app (tests/template), registered as a separate app would be: its own client
      // and its own scheme, so a redirect meant for one app is refused for the other.
      client_id: 'acme-signin',
      client_name: 'Acme Sign-In',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['com.acme.signin:/callback'],
      post_logout_redirect_uris: ['com.acme.signin:/logout'],
      id_token_signed_response_alg: ID_TOKEN_ALG,
    }],
    jwks: { keys: signingKeys },
    clientAuthMethods: CLIENT_AUTH_METHODS,
    cookies: { keys: COOKIE_KEYS },
    scopes: SCOPES,
    claims: SCOPE_CLAIMS,
    conformIdTokenClaims: true,
    clockTolerance: 0,
    pkce: { required: () => true },
    rotateRefreshToken: true,
    routes: ROUTES,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: REFRESH_TOKEN_TTL,
      Session: SESSION_TTL,
      Grant: Math.max(REFRESH_TOKEN_TTL, SESSION_TTL, ACCESS_TOKEN_TTL),
      Interaction: 3600,
      DeviceCode: DEVICE_CODE_TTL,
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
      dPoPSigningAlgValues: DPOP_ALGS,
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      dPoP: {
        enabled: DPOP !== 'off',
        ...(DPOP === 'nonce' ? { nonceSecret: DPOP_NONCE_SECRET, requireNonce: () => true } : {}),
      },
      pushedAuthorizationRequests: {
        enabled: PAR !== 'off',
        requirePushedAuthorizationRequests: PAR === 'required',
      },
      deviceFlow: {
        enabled: true,
        // Our own pages (no web fonts), with ids the browser driver finds.
        async userCodeInputSource(ctx, form, _out, err) {
          let msg = '';
          if (err?.name === 'AbortedError') msg = 'The sign-in was aborted.';
          else if (err) msg = 'The code you entered is not valid.';
          ctx.type = 'html';
          ctx.body = page('Device sign-in - Latchkey Dev IdP', `<h1 id="device-input">Enter the code shown on your device</h1>
${msg ? `<p class="error" id="device-error" role="alert">${esc(msg)}</p>` : ''}
${form}
<button type="submit" id="device-submit" form="op.deviceInputForm">Continue</button>`);
        },
        async userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
          stats.interactions.device_confirm_pages += 1;
          ctx.type = 'html';
          ctx.body = page('Confirm device - Latchkey Dev IdP', `<h1 id="device-confirm">Sign in ${esc(client.clientName || client.clientId)} on your device?</h1>
<p>Check that your device shows this code: <code id="user-code">${esc(userCode)}</code></p>
${form}
<button type="submit" id="device-continue" form="op.deviceConfirmForm">Continue</button>
<button type="submit" id="device-abort" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
        },
        async successSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Device signed in - Latchkey Dev IdP', '<h1 id="device-done">Your device is signed in</h1><p>You can close this page.</p>');
          },
        },
      resourceIndicators: {
        enabled: true,
        // RFC 8707 §2.2 lets the token request leave `resource` out: the one granted at /auth is
        // used for the code exchange and every refresh.
        useGrantedResource: () => true,
        async getResourceServerInfo(_ctx, indicator) {
          if (indicator !== API_RESOURCE) throw new OidcErrors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            scope: API_SCOPES,
            audience: API_RESOURCE,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          const script = LOGOUT_AUTO_SUBMIT
            ? `<script>document.addEventListener('DOMContentLoaded',function(){var f=document.getElementById('op.logoutForm');var i=document.createElement('input');i.type='hidden';i.name='logout';i.value='yes';f.appendChild(i);f.submit();});</script>`
            : '';
          ctx.type = 'html';
          ctx.body = page('Sign out - Latchkey Dev IdP', `<h1 id="logout-page">Sign out?</h1>
<p>Do you want to sign out from ${esc(ctx.host)}?</p>
${form}
<button type="submit" id="logout" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button type="submit" id="stay" form="op.logoutForm">No, stay signed in</button>`, script);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out - Latchkey Dev IdP', '<h1 id="logged-out">Signed out</h1><p>You have been signed out.</p>');
        },
      },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // The API's JWT access tokens carry the account's authorization claims.
    async extraTokenClaims(_ctx, token) {
      if (token.kind !== 'AccessToken' || !token.resourceServer) return undefined;
      apiTokenGrants.set(token.jti, token.grantId);
      return structuredClone(API_CLAIMS[token.accountId] ?? {});
    },
    async renderError(ctx, out, error) {
      ctx.type = 'html';
      ctx.body = page('Error - Latchkey Dev IdP', `<h1 id="op-error">Error</h1>
${Object.entries(out).map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span class="${esc(k)}">${esc(v)}</span></p>`).join('\n')}`);
      log('renderError', out, error?.error_detail ?? '');
    },
  });

  for (const ev of ERROR_EVENTS) {
    p.on(ev, (ctx, err) => log(`${ev}:`, err?.error ?? err?.name, '-', err?.error_description ?? err?.message ?? '', err?.error_detail ? `(detail: ${err.error_detail})` : ''));
  }
  p.on('server_error', (ctx, err) => log('server_error:', err?.stack ?? err));
  p.on('grant.success', (ctx) => log('grant.success', ctx.oidc?.params?.grant_type ?? ''));
  p.on('grant.revoked', (ctx, grantId) => log('grant.revoked', grantId));
  p.on('authorization.success', (ctx) => log('authorization.success', ctx.oidc?.params?.redirect_uri ?? ''));
  p.on('end_session.success', () => log('end_session.success'));

  // Stats middleware: sees every request the provider really handles.
  p.use(async (ctx, next) => {
    const path = ctx.path;
    const started = Date.now();
    if (path === ROUTES.authorization && ctx.method === 'GET') {
      authorizationRequests.push({ ...ctx.query });
    }
    await next();
    applyTamper(ctx, path);
    if (path === ROUTES.authorization) {
      stats.authorization_requests += 1;
      if (ctx.method === 'POST') authorizationRequests.push({ ...(ctx.oidc?.body ?? {}) });
    } else if (path === ROUTES.pushed_authorization_request) {
      stats.par_requests += 1;
      const body = { ...(ctx.oidc?.body ?? {}) };
      delete body.client_secret;
      parRequests.push({
        ts: Date.now(),
        params: body,
        client_auth: clientAuthOf(ctx),
        status: ctx.status,
        error: ctx.status >= 400 ? ctx.body?.error : undefined,
      });
    } else if (path === ROUTES.device_authorization) {
      stats.device_authorizations += 1;
      // oidc-provider sends no `interval`; a test may set one (RFC 8628 §3.2).
      if (DEVICE_INTERVAL !== undefined && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
      }
    } else if (path === ROUTES.token) {
      const params = ctx.oidc?.params ?? ctx.oidc?.body ?? {};
      const gt = params.grant_type || 'unknown';
      stats.token_requests[gt] = (stats.token_requests[gt] ?? 0) + 1;
      const error = ctx.status >= 400 ? (ctx.body?.error ?? `http_${ctx.status}`) : undefined;
      if (error) stats.token_errors[error] = (stats.token_errors[error] ?? 0) + 1;
      tokenRequests.push({
        ts: Date.now(),
        grant_type: gt,
        client_id: params.client_id,
        redirect_uri: params.redirect_uri,
        scope: params.scope,
        has_code_verifier: !!params.code_verifier,
        // The DPoP proof's claims (RFC 9449 §4.2), decoded without verification: the provider
        // itself verified it. null when the request carried none.
        dpop: dpopClaims(ctx.get('dpop')),
        // Test-only secrets, for the log scan (tests/e2e/tests/logs.rs): what must never appear
        // in a Latchkey log. This admin API listens on loopback only.
        code: params.code,
        code_verifier: params.code_verifier,
        device_code: params.device_code,
        has_client_secret: clientAuthOf(ctx) !== 'none',
        client_auth: clientAuthOf(ctx),
        status: ctx.status,
        error,
        error_description: ctx.status >= 400 ? ctx.body?.error_description : undefined,
      });
    } else if (path === ROUTES.revocation) {
      stats.revocations += 1;
    } else if (path === ROUTES.userinfo) {
      stats.userinfo_requests += 1;
      userinfoRequests.push({
        ts: Date.now(),
        method: ctx.method,
        scheme: (ctx.get('authorization') || '').split(' ')[0] || null,
        dpop: dpopClaims(ctx.get('dpop')),
        status: ctx.status,
        error: ctx.status >= 400 ? (ctx.body?.error ?? wwwError(ctx)) : undefined,
      });
    } else if (path === '/.well-known/openid-configuration' || path === '/.well-known/oauth-authorization-server') {
      stats.discovery_requests += 1;
    } else if (path === ROUTES.jwks) {
      stats.jwks_requests += 1;
    } else if (path === ROUTES.end_session) {
      stats.end_session_requests += 1;
    }
    if (!QUIET) log(`${ctx.method} ${path} -> ${ctx.status} (${Date.now() - started} ms)`);
  });

  return p;
}

// ---------------------------------------------------------------- tampering (test only)
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Re-signs a compact JWS with the provider's own private key of the same kid, after `edit`
// changed its payload. Node's crypto signs; nothing is implemented here.
function resign(jwt, edit) {
  const [h, pl] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  const payload = JSON.parse(Buffer.from(pl, 'base64url').toString('utf8'));
  edit(payload);
  const jwk = signingKeys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`tamper: no signing key ${header.kid}`);
  const { kid: _k, alg: _a, use: _u, ...material } = jwk;
  const key = crypto.createPrivateKey({ key: material, format: 'jwk' });
  const input = `${h}.${b64url(JSON.stringify(payload))}`;
  const data = Buffer.from(input);
  let sig;
  switch (header.alg) {
    case 'RS256': sig = crypto.sign('sha256', data, key); break;
    case 'PS256': sig = crypto.sign('sha256', data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }); break;
    case 'ES256': sig = crypto.sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }); break;
    case 'EdDSA': case 'Ed25519': sig = crypto.sign(null, data, key); break;
    default: throw new Error(`tamper: cannot sign ${header.alg}`);
  }
  return `${input}.${b64url(sig)}`;
}

function editClaims(spec) {
  return (payload) => {
    for (const [k, v] of Object.entries(spec?.set ?? {})) payload[k] = v;
    for (const k of spec?.unset ?? []) delete payload[k];
  };
}

// The authorization response leaves from /auth (or its resume step /auth/:uid) as a form_post
// page or a redirect; the token response from /token as JSON.
function applyTamper(ctx, path) {
  const at = path === ROUTES.token ? 'token'
    : (path === ROUTES.authorization || path.startsWith(`${ROUTES.authorization}/`)) ? 'authorization' : undefined;
  if (!at || ctx.status >= 400) return;
  const t = tampers.find((x) => x.at === at && x.remaining !== 0);
  if (!t) return;
  let done = false;
  if (at === 'token' && ctx.body && typeof ctx.body === 'object' && (t.response || (ctx.body.id_token && t.id_token))) {
    // `response.set` replaces fields of the token response itself (a hostile access_token).
    const body = { ...ctx.body, ...(t.response?.set ?? {}) };
    if (body.id_token && t.id_token) body.id_token = resign(body.id_token, editClaims(t.id_token));
    ctx.body = body;
    done = true;
  } else if (at === 'authorization' && typeof ctx.body === 'string' && ctx.body.includes('<form method="post"')) {
    let html = ctx.body;
    if (t.id_token) {
      html = html.replace(/(name="id_token" value=")([^"]+)(")/, (_m, a, jwt, c) => `${a}${resign(jwt, editClaims(t.id_token))}${c}`);
    }
    for (const [k, v] of Object.entries(t.form?.set ?? {})) {
      html = html.replace(new RegExp(`(name="${k}" value=")[^"]*(")`), (_m, a, c) => `${a}${esc(v)}${c}`);
    }
    const attrs = `${t.form?.method ? ` method="${esc(t.form.method)}"` : ' method="post"'}${t.form?.enctype ? ` enctype="${esc(t.form.enctype)}"` : ''}`;
    ctx.body = html.replace('<form method="post"', `<form${attrs}`);
    done = true;
  } else if (at === 'authorization' && t.id_token && ctx.status >= 300 && ctx.status < 400) {
    const loc = ctx.response.get('location');
    const [base, fragment] = loc.split('#');
    if (fragment) {
      const params = new URLSearchParams(fragment);
      if (params.get('id_token')) {
        params.set('id_token', resign(params.get('id_token'), editClaims(t.id_token)));
        ctx.set('location', `${base}#${params}`);
        done = true;
      }
    }
  }
  if (done) {
    if (t.remaining > 0) t.remaining -= 1;
    tampers = tampers.filter((x) => x.remaining !== 0);
    stats.tampers_served[at] = (stats.tampers_served[at] ?? 0) + 1;
    log(`tampered with the ${at} response`);
  }
}

// A DPoP proof's header and claims, without the signature (public data: the key in it is public).
function dpopClaims(proof) {
  if (!proof) return null;
  try {
    const [h, c] = proof.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    return { header: h, claims: c };
  } catch {
    return { unreadable: true };
  }
}

// The error a resource answered in WWW-Authenticate (RFC 6750 §3, RFC 9449 §7.1).
function wwwError(ctx) {
  const m = /error="([^"]+)"/.exec(String(ctx.response.get('www-authenticate') || ''));
  return m ? m[1] : `http_${ctx.status}`;
}

// How a request authenticated its client: a Basic header, a secret in the body, or neither.
function clientAuthOf(ctx) {
  if (/^basic /i.test(ctx.get('authorization') || '')) return 'client_secret_basic';
  if ((ctx.oidc?.body ?? {}).client_secret) return 'client_secret_post';
  return 'none';
}

function installProvider() {
  provider = buildProvider();
  providerCallback = provider.callback();
}

// ---------------------------------------------------------------- http helpers
async function readBody(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > 1024 * 1024) throw new Error('body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req) {
  const text = await readBody(req);
  if (!text.trim()) return {};
  return JSON.parse(text);
}

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(html) });
  res.end(html);
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// ---------------------------------------------------------------- admin API
async function introspect(token) {
  if (typeof token !== 'string' || !token) return { active: false, reason: 'missing token' };
  for (const model of ['RefreshToken', 'AccessToken']) {
    const t = await provider[model].find(token, { ignoreExpiration: true });
    if (!t) continue;
    const grant = t.grantId ? await provider.Grant.find(t.grantId) : undefined;
    const expired = t.isExpired;
    const consumed = !!t.consumed;
    const active = !expired && !consumed && !!grant;
    return {
      active,
      token_type: model === 'RefreshToken' ? 'refresh_token' : 'access_token',
      sub: t.accountId,
      client_id: t.clientId,
      scope: t.scope,
      exp: t.exp,
      iat: t.iat,
      grant_id: t.grantId,
      // The DPoP key thumbprint the token is bound to (RFC 9449 §6), or null for Bearer.
      jkt: t.jkt ?? null,
      grant_exists: !!grant,
      expired,
      consumed,
    };
  }
  return { active: false, reason: 'not found' };
}

async function revokeGrants(sub, { sessions = false } = {}) {
  const ids = grantsOf(sub);
  for (const id of ids) {
    revokeGrantMembers(id);
    store.delete(`Grant:${id}`);
  }
  let sessionsDestroyed = 0;
  if (sessions) {
    for (const [key, e] of [...store]) {
      if (key.startsWith('Session:') && e.payload.accountId === sub) {
        store.delete(key);
        sessionsDestroyed += 1;
      }
    }
  }
  return { revoked_grants: ids.length, grant_ids: ids, sessions_destroyed: sessionsDestroyed };
}

async function handleDev(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /__dev/stats':
      return sendJson(res, 200, stats);
    case 'GET /__dev/authorization_requests':
      return sendJson(res, 200, authorizationRequests);
    case 'GET /__dev/token_requests':
      return sendJson(res, 200, tokenRequests);
    case 'GET /__dev/par_requests':
      return sendJson(res, 200, parRequests);
    case 'GET /__dev/userinfo_requests':
      return sendJson(res, 200, userinfoRequests);
    case 'GET /__dev/requests':
      return sendJson(res, 200, requests);
    case 'GET /__dev/routes':
      return sendJson(res, 200, PUBLIC_ROUTES);
    case 'GET /__dev/faults':
      return sendJson(res, 200, faults);
    case 'GET /__dev/tampers':
      return sendJson(res, 200, tampers);
    case 'POST /__dev/tamper': {
      const b = await readJson(req);
      if (!['authorization', 'token'].includes(b.at)) return sendJson(res, 400, { error: 'at must be authorization or token' });
      if (!b.id_token && !b.form) return sendJson(res, 400, { error: 'id_token {set, unset} and/or form {method, enctype, set} required' });
      const tamper = { at: b.at, id_token: b.id_token, response: b.response, form: b.form, remaining: b.count === undefined ? 1 : Number(b.count) };
      tampers.push(tamper);
      log('tamper installed', tamper);
      return sendJson(res, 200, { ok: true, tamper });
    }
    case 'GET /__dev/keys':
      return sendJson(res, 200, { id_token_alg: ID_TOKEN_ALG, keys: publicKid(signingKeys) });
    case 'POST /__dev/reset': {
      await readBody(req);
      stats = freshStats();
      authorizationRequests = [];
      tokenRequests = [];
      parRequests = [];
      userinfoRequests = [];
      requests = [];
      faults = [];
      tampers = [];
      return sendJson(res, 200, { ok: true });
    }
    case 'POST /__dev/fault': {
      const b = await readJson(req);
      if (typeof b.path !== 'string' || !b.path.startsWith('/')) return sendJson(res, 400, { error: 'path (string starting with /) required' });
      if (b.status === undefined && b.delay_ms === undefined) return sendJson(res, 400, { error: 'status and/or delay_ms required' });
      const fault = {
        path: b.path,
        method: b.method ? String(b.method).toUpperCase() : undefined,
        status: b.status === undefined ? undefined : Number(b.status),
        body: b.body,
        // Extra response headers, e.g. {"DPoP-Nonce": "n1"} with a use_dpop_nonce body.
        headers: b.headers && typeof b.headers === 'object' ? b.headers : undefined,
        delay_ms: b.delay_ms === undefined ? undefined : Number(b.delay_ms),
        remaining: b.count === undefined ? 1 : Number(b.count),
      };
      faults.push(fault);
      log('fault installed', fault);
      return sendJson(res, 200, { ok: true, fault });
    }
    case 'POST /__dev/introspect': {
      const b = await readJson(req);
      return sendJson(res, 200, await introspect(b.token));
    }
    case 'POST /__dev/rotate_keys': {
      await readBody(req);
      const old = publicKid(signingKeys);
      signingKeys = generateKeys();
      installProvider();
      log('signing keys rotated', publicKid(signingKeys).map((k) => k.kid).join(' '));
      return sendJson(res, 200, { ok: true, old_keys: old, keys: publicKid(signingKeys) });
    }
    case 'POST /__dev/revoke_grants': {
      const b = await readJson(req);
      if (typeof b.sub !== 'string') return sendJson(res, 400, { error: 'sub required' });
      const r = await revokeGrants(b.sub, { sessions: !!b.sessions });
      log('revoke_grants', b.sub, r);
      return sendJson(res, 200, { ok: true, ...r });
    }
    default: {
      const user = req.method === 'POST' && url.pathname.match(/^\/__dev\/users\/([a-z]+)$/);
      if (user) {
        const acct = ACCOUNTS[user[1]];
        if (!acct) return sendJson(res, 404, { error: `unknown user ${user[1]}` });
        const b = await readJson(req);
        const unknown = Object.keys(b).filter((k) => !EDITABLE.has(k));
        if (unknown.length) return sendJson(res, 400, { error: `not editable: ${unknown.join(', ')}; editable: ${[...EDITABLE].join(', ')}` });
        Object.assign(acct, b);
        log('user changed', user[1], Object.keys(b).join(' '));
        return sendJson(res, 200, { ok: true, user: acct });
      }
      return sendJson(res, 404, { error: 'unknown dev route', route });
    }
  }
}

// ---------------------------------------------------------------- interactions
function requestedScopes(details) {
  const s = (details.params.scope ?? '').split(' ').filter(Boolean);
  return [...new Set(s)];
}

async function handleInteraction(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
  if (!m) return sendHtml(res, 404, page('Not found', '<h1>Not found</h1>'));
  const [, uid, action] = m;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    log('interactionDetails failed:', err?.message);
    return sendHtml(res, 400, page('Error', `<h1 id="op-error">Error</h1><p class="error_description">${esc(err?.message ?? 'interaction not found')}</p>`));
  }
  if (details.uid !== uid) {
    return sendHtml(res, 400, page('Error', '<h1 id="op-error">Error</h1><p class="error_description">interaction mismatch</p>'));
  }
  const promptName = details.prompt.name;

  if (req.method === 'GET' && !action) {
    if (promptName === 'login') {
      stats.interactions.login_pages += 1;
      return sendHtml(res, 200, loginPage(uid, details));
    }
    if (promptName === 'consent') {
      stats.interactions.consent_pages += 1;
      return sendHtml(res, 200, consentPage(uid, details, requestedScopes(details)));
    }
    return sendHtml(res, 400, page('Error', `<h1 id="op-error">Error</h1><p>unknown prompt ${esc(promptName)}</p>`));
  }
  if (req.method !== 'POST') return sendHtml(res, 405, page('Error', '<h1>Method not allowed</h1>'));
  const form = new URLSearchParams(await readBody(req));

  if (action === 'login') {
    if (promptName !== 'login') return sendHtml(res, 400, page('Error', '<h1 id="op-error">Error</h1><p>not a login prompt</p>'));
    const login = (form.get('login') ?? '').trim();
    const password = form.get('password') ?? '';
    let error;
    if (!ACCOUNTS[login]) error = `Unknown user "${login}".`;
    else if (password === 'wrong' || password === '') error = 'Invalid username or password.';
    if (error) {
      stats.interactions.login_failures += 1;
      log('login failed:', error);
      return sendHtml(res, 200, loginPage(uid, details, error, login));
    }
    stats.interactions.logins += 1;
    log('login ok:', login);
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }

  if (action === 'confirm' || action === 'abort') {
    if (promptName !== 'consent') return sendHtml(res, 400, page('Error', '<h1 id="op-error">Error</h1><p>not a consent prompt</p>'));
    if (action === 'abort' || form.get('decision') === 'deny') {
      stats.interactions.consents_denied += 1;
      log('consent denied');
      return provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'The user denied the request',
      }, { mergeWithLastSubmission: false });
    }
    const requested = requestedScopes(details);
    const checked = new Set(form.getAll('scope'));
    checked.add('openid'); // required
    const granted = requested.filter((s) => checked.has(s));
    const rejected = requested.filter((s) => !checked.has(s));
    // A fresh grant per consent, so a narrower consent really narrows the grant.
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (granted.length) grant.addOIDCScope(granted.join(' '));
    if (rejected.length) grant.rejectOIDCScope(rejected.join(' '));
    const { details: d } = details.prompt;
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        const kept = scopes.filter((sc) => checked.has(sc));
        if (kept.length) grant.addResourceScope(indicator, kept.join(' '));
      }
    }
    const grantId = await grant.save();
    stats.interactions.consents_approved += 1;
    log('consent approved:', granted.join(' '), rejected.length ? `(rejected: ${rejected.join(' ')})` : '');
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return sendHtml(res, 404, page('Not found', '<h1>Not found</h1>'));
}

// ---------------------------------------------------------------- userinfo for API tokens
// oidc-provider refuses every access token with an audience at userinfo. Keycloak, Okta's
// custom authorization servers and Auth0 (audience + openid) accept their API tokens there, so
// this provider does too: it verifies the JWT itself (signature with its own RS256 key, iss,
// aud, exp), requires its grant to still exist and to hold `openid`, and releases the claims of
// the grant's OIDC scopes, as oidc-provider's own userinfo would.
function apiBearer(req) {
  const m = /^Bearer ([\w-]+\.[\w-]+\.[\w-]+)$/.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function verifyApiToken(jwt) {
  const [h, p, sig] = jwt.split('.');
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url'));
    payload = JSON.parse(Buffer.from(p, 'base64url'));
  } catch {
    return undefined;
  }
  const jwk = signingKeys.find((k) => k.kid === header.kid && k.alg === 'RS256');
  if (header.alg !== 'RS256' || !jwk) return undefined;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  if (!crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url'))) return undefined;
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (payload.iss !== issuer || !aud.includes(API_RESOURCE) || !(payload.exp > Date.now() / 1000)) return undefined;
  return payload;
}

async function apiUserinfo(req, res, jwt) {
  stats.userinfo_requests += 1;
  const refuse = (status, error, description) => {
    res.setHeader('www-authenticate', `Bearer error="${error}", error_description="${description}"`);
    return sendJson(res, status, { error, error_description: description });
  };
  const payload = verifyApiToken(jwt);
  if (!payload) return refuse(401, 'invalid_token', 'invalid token provided');
  const grantId = apiTokenGrants.get(payload.jti);
  const grant = grantId && await provider.Grant.find(grantId);
  if (!grant) return refuse(401, 'invalid_token', 'grant not found');
  const scopes = (grant.getOIDCScope() ?? '').split(' ');
  if (!scopes.includes('openid')) return refuse(403, 'insufficient_scope', 'access token missing openid scope');
  const account = await findAccount(undefined, payload.sub);
  if (!account) return refuse(401, 'invalid_token', 'account not found');
  const all = await account.claims();
  const out = { sub: payload.sub };
  for (const scope of scopes) {
    for (const claim of SCOPE_CLAIMS[scope] ?? []) if (all[claim] !== undefined) out[claim] = all[claim];
  }
  if (!QUIET) log(`${req.method} ${ROUTES.userinfo} (API token) -> 200`);
  return sendJson(res, 200, out);
}

// ---------------------------------------------------------------- server
async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  try {
    if (url.pathname.startsWith('/__dev/')) return await handleDev(req, res, url);
    requests.push({ ts: Date.now(), method: req.method, path: url.pathname, peer: req.socket.remoteAddress });
    const avatar = req.method === 'GET' && url.pathname.match(/^\/avatars\/([a-z]+)\.png$/);
    if (avatar && PICTURES[avatar[1]]) {
      stats.picture_requests += 1;
      res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'max-age=3600' });
      return res.end(PICTURES[avatar[1]]);
    }

    // fault injection (before the provider sees the request)
    const fault = faults.find((f) => f.remaining !== 0 && f.path === url.pathname && (!f.method || f.method === req.method));
    if (fault) {
      if (fault.remaining > 0) fault.remaining -= 1;
      faults = faults.filter((f) => f.remaining !== 0);
      stats.faults_served[url.pathname] = (stats.faults_served[url.pathname] ?? 0) + 1;
      log(`fault on ${req.method} ${url.pathname}:`, fault.status ? `status ${fault.status}` : '', fault.delay_ms ? `delay ${fault.delay_ms} ms` : '');
      if (fault.delay_ms) {
        let gone = false;
        res.once('close', () => { gone = true; });
        await sleep(fault.delay_ms);
        if (gone) return undefined;
      }
      if (fault.status) return sendJson(res, fault.status, fault.body ?? { error: 'temporarily_unavailable' }, fault.headers);
    }

    if (url.pathname.startsWith('/interaction/')) return await handleInteraction(req, res, url);
    if (url.pathname === ROUTES.userinfo && apiBearer(req)) return await apiUserinfo(req, res, apiBearer(req));
    if (url.pathname === '/favicon.ico') { res.writeHead(204); res.end(); return undefined; }
    return providerCallback(req, res);
  } catch (err) {
    log('handler error:', err?.stack ?? err);
    if (!res.headersSent) return sendJson(res, err instanceof SyntaxError ? 400 : 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    res.destroy();
    return undefined;
  }
}

// HTTPS with the test's own certificate (a private CA's leaf, as behind TLS inspection).
const TLS_CERT = process.env.DEV_TLS_CERT;
const TLS_KEY = process.env.DEV_TLS_KEY;
if (Boolean(TLS_CERT) !== Boolean(TLS_KEY)) {
  process.stderr.write('provider: DEV_TLS_CERT and DEV_TLS_KEY go together: set both (PEM files) or neither\n');
  process.exit(2);
}
const SCHEME = TLS_CERT ? 'https' : 'http';
const server = TLS_CERT
  ? https.createServer({ cert: fs.readFileSync(TLS_CERT), key: fs.readFileSync(TLS_KEY) }, (req, res) => { handle(req, res); })
  : http.createServer((req, res) => { handle(req, res); });
server.keepAliveTimeout = 5000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
issuer = `${SCHEME}://127.0.0.1:${server.address().port}`;
stamp('listening');
installProvider();
log(`issuer ${issuer}; client ${CLIENT_ID}; id_token alg ${ID_TOKEN_ALG}; ttl access=${ACCESS_TOKEN_TTL}s id=${ID_TOKEN_TTL}s refresh=${REFRESH_TOKEN_TTL}s session=${SESSION_TTL}s`);
process.stdout.write(`READY ${issuer}\n`);

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
