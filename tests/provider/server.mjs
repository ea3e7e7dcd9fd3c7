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
// is listening; everything else goes to stderr. See tests/README.md.
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

import http from 'node:http';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

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

const { default: Provider } = await import('oidc-provider');

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
const SUPPORTED_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
if (!SUPPORTED_ALGS.includes(ID_TOKEN_ALG)) {
  throw new Error(`DEV_ID_TOKEN_ALG must be one of ${SUPPORTED_ALGS.join(', ')}`);
}

const CLIENT_ID = 'latchkey-desktop';
const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'api:read'];
const ROUTES = {
  authorization: '/auth',
  token: '/token',
  userinfo: '/me',
  jwks: '/jwks',
  revocation: '/token/revocation',
  introspection: '/token/introspection',
  end_session: '/session/end',
  // unused features keep their defaults
  backchannel_authentication: '/backchannel',
  code_verification: '/device',
  device_authorization: '/device/auth',
  pushed_authorization_request: '/request',
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
};

const log = (...a) => errWrite(`[provider ${new Date().toISOString()}]`, ...a);

// ---------------------------------------------------------------- accounts
const ACCOUNTS = {
  alice: {
    sub: 'alice', name: 'Alice Example', given_name: 'Alice', family_name: 'Example',
    email: 'alice@example.com', email_verified: true,
  },
  bob: {
    sub: 'bob', name: 'Bob Example', given_name: 'Bob', family_name: 'Example',
    email: 'bob@example.com', email_verified: true,
  },
};

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
    interactions: { login_pages: 0, logins: 0, login_failures: 0, consent_pages: 0, consents_approved: 0, consents_denied: 0 },
    faults_served: {},
  };
}
let stats = freshStats();
let authorizationRequests = [];
let tokenRequests = [];
let faults = []; // { path, method?, status?, body?, delay_ms?, remaining }

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
    adapter: DevAdapter,
    findAccount,
    clients: [{
      client_id: CLIENT_ID,
      client_name: 'Latchkey',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['com.example.latchkey:/callback', 'http://127.0.0.1/callback'],
      post_logout_redirect_uris: ['com.example.latchkey:/logout', 'http://127.0.0.1/logout'],
      id_token_signed_response_alg: ID_TOKEN_ALG,
    }],
    jwks: { keys: signingKeys },
    cookies: { keys: COOKIE_KEYS },
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'picture'],
      email: ['email', 'email_verified'],
    },
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
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
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
    if (path === ROUTES.authorization) {
      stats.authorization_requests += 1;
      if (ctx.method === 'POST') authorizationRequests.push({ ...(ctx.oidc?.body ?? {}) });
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
        has_client_secret: !!params.client_secret,
        status: ctx.status,
        error,
        error_description: ctx.status >= 400 ? ctx.body?.error_description : undefined,
      });
    } else if (path === ROUTES.revocation) {
      stats.revocations += 1;
    } else if (path === ROUTES.userinfo) {
      stats.userinfo_requests += 1;
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

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
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
    case 'GET /__dev/routes':
      return sendJson(res, 200, PUBLIC_ROUTES);
    case 'GET /__dev/faults':
      return sendJson(res, 200, faults);
    case 'GET /__dev/keys':
      return sendJson(res, 200, { id_token_alg: ID_TOKEN_ALG, keys: publicKid(signingKeys) });
    case 'POST /__dev/reset': {
      await readBody(req);
      stats = freshStats();
      authorizationRequests = [];
      tokenRequests = [];
      faults = [];
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
    default:
      return sendJson(res, 404, { error: 'unknown dev route', route });
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
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    stats.interactions.consents_approved += 1;
    log('consent approved:', granted.join(' '), rejected.length ? `(rejected: ${rejected.join(' ')})` : '');
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return sendHtml(res, 404, page('Not found', '<h1>Not found</h1>'));
}

// ---------------------------------------------------------------- server
async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  try {
    if (url.pathname.startsWith('/__dev/')) return await handleDev(req, res, url);
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
      if (fault.status) return sendJson(res, fault.status, fault.body ?? { error: 'temporarily_unavailable' });
    }

    if (url.pathname.startsWith('/interaction/')) return await handleInteraction(req, res, url);
    if (url.pathname === '/favicon.ico') { res.writeHead(204); res.end(); return undefined; }
    return providerCallback(req, res);
  } catch (err) {
    log('handler error:', err?.stack ?? err);
    if (!res.headersSent) return sendJson(res, err instanceof SyntaxError ? 400 : 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    res.destroy();
    return undefined;
  }
}

const server = http.createServer((req, res) => { handle(req, res); });
server.keepAliveTimeout = 5000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
issuer = `http://127.0.0.1:${server.address().port}`;
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
