#!/usr/bin/env node
// Headless-Chromium "user" for Latchkey's integration tests, used as $BROWSER:
//
//   node tests/browser/driver.mjs [ignored args...] <authorization URL>
//
// Opens the URL (the LAST argument) in a fresh headless Chromium profile and
// plays the user against the dev provider (tests/provider/server.mjs): signs in,
// answers the consent page, follows the redirect. Loopback redirects are
// followed by the browser to the app's listener; custom-scheme redirects are
// caught with CDP and optionally delivered to a command the way an OS does.
// Env knobs are documented in tests/README.md. Exit 0 on success, 1 on error.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const env = process.env;
const URL_ARG = process.argv[process.argv.length - 1];
const USER = env.DRIVER_USER || 'alice';
const PASSWORD = env.DRIVER_PASSWORD ?? 'password';
const ACTION = (env.DRIVER_ACTION || 'approve').toLowerCase();
const UNCHECK = (env.DRIVER_UNCHECK || '').split(/\s+/).filter(Boolean);
// The device flow (RFC 8628): the code to type when the page asks for one (a plain
// verification_uri); verification_uri_complete carries it already.
const USER_CODE = env.DRIVER_USER_CODE || '';
const HOLD_MS = Number(env.DRIVER_HOLD_MS || 600000);
const TIMEOUT_MS = Number(env.DRIVER_TIMEOUT_MS || 60000);
const LOG_FILE = env.DRIVER_LOG;
const CAPTURE_FILE = env.DRIVER_CAPTURE;
const DELIVER = env.DRIVER_DELIVER;
const SCREENSHOT_DIR = env.DRIVER_SCREENSHOT_DIR;
const CHROMIUM = env.DRIVER_CHROMIUM || '/usr/bin/chromium';
const DEBUG = env.DRIVER_DEBUG === '1';
// TEST ONLY: a PEM file of certificates (a test's private CA and its server certificate) whose
// keys Chromium accepts despite not chaining to a trusted root, via SPKI pinning
// (--ignore-certificate-errors-spki-list). Narrower than ignoring every certificate error: only a
// server presenting one of these keys passes. Never use it outside tests.
const TRUST_CERT = env.DRIVER_TRUST_CERT;
const PROFILE_DIR = env.DRIVER_PROFILE_DIR; // optional persistent profile (kept), so the OP session survives between runs

const started = Date.now();
const debug = (...a) => { if (DEBUG) process.stderr.write(`driver[${Date.now() - started}ms]: ${a.join(' ')}\n`); };

function logEvent(obj) {
  if (!LOG_FILE) return;
  try {
    fs.appendFileSync(LOG_FILE, `${JSON.stringify({ ts: Date.now(), pid: process.pid, url: URL_ARG, ...obj })}\n`);
  } catch (err) {
    process.stderr.write(`driver: cannot write DRIVER_LOG: ${err.message}\n`);
  }
}

class DriverError extends Error {}
const fail = (msg) => { throw new DriverError(msg); };
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const isHttp = (u) => /^https?:$/i.test(safeUrl(u)?.protocol ?? '');
const isLoopback = (u) => { const p = safeUrl(u); return !!p && p.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(p.hostname); };
function safeUrl(u) { try { return new URL(u); } catch { return undefined; } }

let browser;
let userDataDir;
let result = { result: 'error' };
let cleanedUp = false;

async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  try { await Promise.race([browser?.close(), sleep(5000)]); } catch { /* ignore */ }
  if (userDataDir) {
    try { fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* ignore */ }
  }
}

// A driver killed with SIGKILL cannot remove its profile; sweep old ones.
/** Chromium's SPKI pin list for DRIVER_TRUST_CERT: base64 SHA-256 of each certificate's key. */
let trustArgsCache;
function trustArgs() {
  if (!TRUST_CERT) return [];
  if (trustArgsCache) return trustArgsCache;
  let pem;
  try {
    pem = fs.readFileSync(TRUST_CERT, 'utf8');
  } catch (e) {
    fail(`DRIVER_TRUST_CERT=${TRUST_CERT} cannot be read: ${e.message}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) fail(`DRIVER_TRUST_CERT=${TRUST_CERT} holds no PEM certificate`);
  const pins = blocks.map((b) => {
    const key = new crypto.X509Certificate(b).publicKey.export({ type: 'spki', format: 'der' });
    return crypto.createHash('sha256').update(key).digest('base64');
  });
  trustArgsCache = [`--ignore-certificate-errors-spki-list=${pins.join(',')}`];
  return trustArgsCache;
}

function sweepStaleProfiles() {
  const tmp = os.tmpdir();
  try {
    for (const name of fs.readdirSync(tmp)) {
      if (!name.startsWith('latchkey-driver-')) continue;
      const dir = path.join(tmp, name);
      if (Date.now() - fs.statSync(dir).mtimeMs > 2 * 3600 * 1000) fs.rmSync(dir, { recursive: true, force: true });
    }
  } catch { /* ignore */ }
}

function runDeliver(redirect) {
  // DRIVER_DELIVER is run through `sh -c` with the captured URL appended as
  // the LAST argument ("$@"), exactly like an OS scheme handler invocation.
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', `${DELIVER} "$@"`, 'driver-deliver', redirect], { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve({ code: null, timedOut: true }); }, 30000);
    child.on('error', (err) => { clearTimeout(timer); resolve({ code: null, error: err.message }); });
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
}

async function main() {
  if (!safeUrl(URL_ARG) || !isHttp(URL_ARG)) fail(`last argument is not an http(s) URL: ${URL_ARG}`);
  if (!['approve', 'deny', 'none'].includes(ACTION)) fail(`unknown DRIVER_ACTION ${ACTION}`);
  logEvent({ event: 'launch' });

  sweepStaleProfiles();
  trustArgs(); // a bad DRIVER_TRUST_CERT fails here, before a browser starts
  let profile;
  if (PROFILE_DIR) {
    fs.mkdirSync(PROFILE_DIR, { recursive: true });
    profile = PROFILE_DIR;
  } else {
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-driver-'));
    profile = userDataDir;
  }
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      // The user's browser is not what a test of Latchkey's proxy support watches: without
      // this, Chromium takes HTTPS_PROXY from the environment the CLI passes on and sends its
      // own background requests (update and account services) to the test's proxy.
      '--no-proxy-server',
      ...trustArgs(),
    ],
    timeout: 30000,
    // Keep Chromium off the test's D-Bus session: it would start desktop portals (noise, and a
    // FUSE mount under XDG_RUNTIME_DIR) and could talk to the keyring under test.
    env: { ...env, DBUS_SESSION_BUS_ADDRESS: 'disabled:' },
  }).catch((err) => fail(`cannot launch ${CHROMIUM}: ${err.message.split('\n')[0]}`));
  const context = browser; // a persistent context owns the browser process
  const page = context.pages()[0] ?? await context.newPage();
  debug('browser up');

  // ---- custom-scheme capture via CDP Fetch at the response stage
  let customRedirect;
  let onCustom;
  const customSeen = new Promise((r) => { onCustom = r; });
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', async (ev) => {
    try {
      const status = ev.responseStatusCode;
      const loc = (ev.responseHeaders ?? []).find((h) => h.name.toLowerCase() === 'location')?.value;
      if (status >= 300 && status < 400 && loc) {
        const target = safeUrl(new URL(loc, ev.request.url).href);
        if (target && !/^https?:$/.test(target.protocol)) {
          customRedirect = loc; // exactly what the OP sent
          debug('custom-scheme redirect', loc);
          await cdp.send('Fetch.fulfillRequest', {
            requestId: ev.requestId,
            responseCode: 200,
            responseHeaders: [{ name: 'Content-Type', value: 'text/html; charset=utf-8' }],
            body: Buffer.from('<!DOCTYPE html><html><head><title>Returned to app</title></head><body><h1 id="returned">Returned to app</h1></body></html>').toString('base64'),
          });
          onCustom(customRedirect);
          return;
        }
      }
      await cdp.send('Fetch.continueRequest', { requestId: ev.requestId });
    } catch (err) {
      debug('Fetch handler error', err.message);
    }
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*', resourceType: 'Document', requestStage: 'Response' }] });

  // ---- loopback: the browser follows the redirect to the app's listener
  let loopbackUrl;
  let onLoopback;
  const loopbackSeen = new Promise((r) => { onLoopback = r; });
  page.on('framenavigated', (frame) => {
    if (frame !== page.mainFrame()) return;
    debug('navigated', frame.url());
    if (isLoopback(frame.url()) && !loopbackUrl && frame.url() !== URL_ARG && !isOpUrl(frame.url())) {
      loopbackUrl = frame.url();
      onLoopback(loopbackUrl);
    }
  });

  const opOrigin = new URL(URL_ARG).origin;
  function isOpUrl(u) { return safeUrl(u)?.origin === opOrigin; }
  let loopbackFailure;
  page.on('requestfailed', (req) => {
    if (req.isNavigationRequest() && isLoopback(req.url()) && !isOpUrl(req.url())) {
      loopbackFailure = `${req.url()}: ${req.failure()?.errorText ?? 'failed'}`;
      debug('loopback request failed', loopbackFailure);
      if (!loopbackUrl) { loopbackUrl = req.url(); onLoopback(loopbackUrl); }
    }
  });

  await page.goto(URL_ARG, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS }).catch((err) => {
    if (!customRedirect && !loopbackUrl) fail(`cannot open ${URL_ARG}: ${err.message.split('\n')[0]}`);
  });

  if (ACTION === 'none') {
    debug(`DRIVER_ACTION=none: holding for ${HOLD_MS} ms`);
    result = { result: 'held', redirect: null };
    await sleep(HOLD_MS);
    return 0;
  }

  // ---- state machine: login -> consent -> redirect (any step may be skipped)
  const handled = new Set();
  for (;;) {
    if (customRedirect) break;
    if (loopbackUrl) break;
    if (Date.now() - started > TIMEOUT_MS) fail(`timed out after ${TIMEOUT_MS} ms at ${page.url()}`);

    const state = await page.evaluate(() => {
      const q = (s) => document.querySelector(s);
      if (q('#op-error')) return { kind: 'op-error', text: document.body.innerText.slice(0, 500) };
      if (q('input[name="login"]') && q('input[name="password"]')) return { kind: 'login', error: q('#error')?.innerText ?? null, action: q('form')?.action };
      if (q('#approve') && q('#deny')) return { kind: 'consent', action: q('form')?.action };
      // LemonLDAP::NG's portal (bootstrap skin). Its messages are translated by script from a
      // `trmsg` code, so the code is kept when the text is not there (yet).
      const llngMsg = (sel) => {
        const m = q(sel);
        if (!m) return null;
        const code = m.querySelector('[trmsg]')?.getAttribute('trmsg');
        return `${m.innerText.trim() || 'message'}${code ? ` (LemonLDAP::NG error ${code})` : ''}`;
      };
      if (q('#errorcontent')) return { kind: 'op-error', text: llngMsg('#errorcontent .message') ?? document.body.innerText.slice(0, 500) };
      if (q('form#lform input[name="user"]') && q('form#lform input[name="password"]')) return { kind: 'login', flavour: 'lemonldap', error: llngMsg('#lform .message-negative') ?? llngMsg('.message-negative'), action: q('form#lform')?.action };
      if (q('form.confirm input#confirm') && q('form.confirm #refuse')) return { kind: 'consent', flavour: 'lemonldap', action: q('form.confirm')?.action };
      if (q('#logout-page')) return { kind: 'logout' };
      if (q('#device-input')) return { kind: 'device-input', error: q('#device-error')?.innerText ?? null };
      if (q('#device-confirm')) return { kind: 'device-confirm', code: q('#user-code')?.innerText ?? null };
      if (q('#device-done')) return { kind: 'device-done' };
      if (q('#returned') || q('#logged-out')) return { kind: 'final' };
      return { kind: 'other', ready: document.readyState };
    }).catch(() => ({ kind: 'navigating' }));
    debug('state', JSON.stringify(state));

    const key = `${state.kind}@${page.url()}`;
    if (state.kind === 'op-error') fail(`provider error page: ${state.text.replace(/\s+/g, ' ')}`);
    if (state.kind === 'login' && state.error) fail(`login rejected: ${state.error}`);
    // The device flow ends on the provider's own page: approved, or aborted by this "user".
    if (state.kind === 'device-done') { result = { result: 'device-approved', final_url: page.url() }; return 0; }
    if (state.kind === 'device-input' && state.error) {
      if (ACTION === 'deny' && handled.has('device-abort')) { result = { result: 'device-aborted', final_url: page.url() }; return 0; }
      fail(`device code rejected: ${state.error}`);
    }
    if (state.kind === 'device-input' && !USER_CODE) fail('the page asks for the user code: set DRIVER_USER_CODE');
    if (state.kind === 'final') {
      if (!customRedirect && !loopbackUrl) { result = { result: 'final', redirect: page.url() }; return 0; }
      break;
    }
    if (['login', 'consent', 'logout', 'device-input', 'device-confirm'].includes(state.kind) && !handled.has(key)) {
      handled.add(key);
      const nav = page.waitForEvent('framenavigated', { timeout: TIMEOUT_MS }).catch(() => undefined);
      if (state.kind === 'device-input') {
        await page.fill('input[name="user_code"]', USER_CODE);
        await page.click('#device-submit', { noWaitAfter: true });
      } else if (state.kind === 'device-confirm') {
        // DRIVER_ACTION=deny aborts here, which the provider answers with access_denied.
        if (ACTION === 'deny') handled.add('device-abort');
        await page.click(ACTION === 'deny' ? '#device-abort' : '#device-continue', { noWaitAfter: true });
      } else if (state.kind === 'login' && state.flavour === 'lemonldap') {
        await page.fill('#lform input[name="user"]', USER);
        await page.fill('#lform input[name="password"]', PASSWORD);
        await page.click('#lform button[type="submit"]', { noWaitAfter: true });
      } else if (state.kind === 'login') {
        await page.fill('input[name="login"]', USER);
        await page.fill('input[name="password"]', PASSWORD);
        await page.click('#submit', { noWaitAfter: true });
      } else if (state.kind === 'consent' && state.flavour === 'lemonldap') {
        // Accept posts confirm=1; Refuse's script posts confirm=-1 (consent_required at the RP).
        if (UNCHECK.length) debug('DRIVER_UNCHECK: LemonLDAP::NG consent has no per-scope boxes');
        await page.click(ACTION === 'deny' ? 'form.confirm #refuse' : 'form.confirm button.positive', { noWaitAfter: true });
      } else if (state.kind === 'consent') {
        if (ACTION === 'deny') {
          await page.click('#deny', { noWaitAfter: true });
        } else {
          for (const s of UNCHECK) {
            const box = page.locator(`input[type="checkbox"][name="scope"][value="${s.replace(/"/g, '\\"')}"]`);
            if (await box.count()) await box.uncheck({ force: true });
            else debug(`DRIVER_UNCHECK: scope ${s} not on the consent page`);
          }
          await page.click('#approve', { noWaitAfter: true });
        }
      } else {
        // logout page auto-submits; click only if it is still there after a moment
        await Promise.race([nav, sleep(2000)]);
        if (await page.locator('#logout').count().catch(() => 0)) await page.click('#logout', { noWaitAfter: true }).catch(() => {});
      }
      await Promise.race([nav, customSeen, loopbackSeen, sleep(TIMEOUT_MS)]);
      await page.waitForLoadState('domcontentloaded', { timeout: 5000 }).catch(() => {});
      continue;
    }
    // unknown or already-handled page: wait for something to change
    await Promise.race([
      page.waitForEvent('framenavigated', { timeout: 1000 }).catch(() => undefined),
      customSeen, loopbackSeen,
    ]);
  }

  if (customRedirect) {
    result = { result: 'custom-scheme', redirect: customRedirect };
    if (CAPTURE_FILE) fs.writeFileSync(CAPTURE_FILE, `${customRedirect}\n`);
    if (DELIVER) {
      const r = await runDeliver(customRedirect);
      result.deliver_exit = r.code;
      if (r.timedOut) result.deliver_error = 'timed out after 30 s';
      if (r.error) result.deliver_error = r.error;
      debug('deliver exit', r.code);
    }
    return 0;
  }

  // loopback: wait for the listener's page to load and record it
  await page.waitForLoadState('load', { timeout: Math.max(1000, TIMEOUT_MS - (Date.now() - started)) }).catch(() => {});
  if (loopbackFailure) {
    result = { result: 'error', redirect: loopbackUrl };
    fail(`loopback redirect not delivered: ${loopbackFailure}`);
  }
  const body = await page.evaluate(() => document.body?.innerText ?? '').catch(() => '');
  result = { result: 'loopback', redirect: loopbackUrl, final_url: page.url(), body: body.slice(0, 2000) };
  return 0;
}

async function saveScreenshot() {
  if (!SCREENSHOT_DIR || !browser) return;
  try {
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const pages = browser.pages();
    if (pages[0]) await pages[0].screenshot({ path: path.join(SCREENSHOT_DIR, `driver-${process.pid}-${Date.now()}.png`), timeout: 5000 });
  } catch { /* ignore */ }
}

let exiting = false;
async function finish(code, reason) {
  if (exiting) return;
  exiting = true;
  if (code !== 0) {
    process.stderr.write(`driver: ${reason}\n`);
    await saveScreenshot();
    result = { ...result, result: 'error', error: reason };
  }
  logEvent({ event: 'done', ...result, elapsed_ms: Date.now() - started });
  await cleanup();
  process.exit(code);
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => { finish(result.result === 'error' ? 1 : 0, `killed by ${sig}`); });
}
const watchdog = setTimeout(() => finish(1, `timed out after ${TIMEOUT_MS} ms`), ACTION === 'none' ? HOLD_MS + TIMEOUT_MS : TIMEOUT_MS + 5000);
watchdog.unref();

main().then(
  (code) => finish(code, ''),
  (err) => finish(1, err instanceof DriverError ? err.message : (err?.stack ?? String(err))),
);
