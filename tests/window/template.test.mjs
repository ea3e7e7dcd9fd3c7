// The template app (tests/template, "Acme Sign-In") in a real window: an app built only from
// tauri-plugin-latchkey and latchkey-core, under its own identity. Run through tests/window/run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import {
  APP, App, CLI, ROOT, WORK, Provider, keychainItems, launches, setBrowser, stopStrayApps, waitFor,
} from './lib/harness.mjs';

const execFileP = promisify(execFile);
const ACME = path.resolve(process.env.ACME_APP ?? path.join(ROOT, 'target/debug/acme-signin'));
const ACME_SCHEME = 'com.acme.signin';
const ACME_CLIENT = 'acme-signin';
let provider;

/** Acme's settings come from ACME_SIGNIN_*; Latchkey's variables are removed to prove it. */
const acmeEnv = (issuer) => ({
  LATCHKEY_ISSUER: null,
  LATCHKEY_CLIENT_ID: null,
  LATCHKEY_SCOPES: null,
  ACME_SIGNIN_ISSUER: issuer,
  ACME_SIGNIN_CLIENT_ID: ACME_CLIENT,
  ACME_SIGNIN_SCOPES: 'openid profile email offline_access',
  DRIVER_DELIVER: ACME,
});

async function secretTool(...args) {
  try {
    const { stdout, stderr } = await execFileP('secret-tool', args);
    return stdout + stderr;
  } catch (e) {
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}

/** Acme's stored session (one entry: short sessions are not chunked). */
async function acmeSession(issuer) {
  const raw = await secretTool('lookup', 'service', ACME_SCHEME, 'username', `default/${ACME_CLIENT}@${issuer}`);
  if (!raw) return null;
  return JSON.parse(raw.slice(raw.indexOf('\n') + 1));
}

async function withAcme(fn) {
  const app = await App.launch({ issuer: provider.issuer, env: acmeEnv(provider.issuer), application: ACME, name: 'acme' });
  try {
    return await fn(app);
  } catch (e) {
    await app.screenshot(`acme-failure-${Date.now()}`).catch(() => {});
    throw new Error(`${e.stack ?? e}\n--- app log (tail) ---\n${app.logTail()}`, { cause: e });
  } finally {
    await app.close();
  }
}

/** Runs `binary url` the way the OS delivers a redirect, in Acme's environment. */
async function deliverTo(binary, url, env) {
  const child = spawn(binary, [url], { env, stdio: 'ignore' });
  const [code] = await once(child, 'exit');
  return code;
}

before(async () => {
  setBrowser({});
  provider = await Provider.start({ name: 'template' });
});

after(async () => {
  await stopStrayApps(ACME);
  await stopStrayApps(APP);
  await provider?.stop();
});

test('Acme Sign-In signs in through the system browser on its own scheme, stores under its own service, and no token reaches its webview', async () => {
  await withAcme(async (app) => {
    await app.waitPhase('signedOut');
    const before = launches().length;
    await app.click('#sign-in');
    await app.waitPhase('signedIn', { timeoutMs: 60000 });
    assert.equal(await app.visibleText('#name'), 'Alice Example');
    assert.equal(await app.visibleText('#subject'), 'alice');

    const launch = launches().slice(before).find((l) => l.url.startsWith(`${provider.issuer}/auth`));
    const auth = new URL(launch.url);
    assert.equal(auth.searchParams.get('redirect_uri'), `${ACME_SCHEME}:/callback`);
    assert.equal(auth.searchParams.get('client_id'), ACME_CLIENT);

    // Its keychain entries are under its own service; Latchkey's service holds nothing, and the
    // latchkey CLI does not see the session.
    const session = await acmeSession(provider.issuer);
    assert.ok(session && session.refresh_token, 'a session under service com.acme.signin');
    assert.deepEqual(await keychainItems(), [], 'nothing under service latchkey');
    const status = await execFileP(CLI, ['status'], {
      env: { ...process.env, LATCHKEY_ISSUER: provider.issuer, LATCHKEY_CLIENT_ID: ACME_CLIENT },
    }).then(() => 0, (e) => e.code);
    assert.equal(status, 1, '`latchkey status` sees no session');

    // Token-in-DOM: not in the page, not in any command result.
    const secrets = [session.access_token, session.refresh_token, session.id_token].filter(Boolean);
    const check = (where, text) => secrets.forEach((s) => assert.ok(!text.includes(s), `a token in ${where}`));
    check('the DOM', await app.html());
    for (const command of ['get_state', 'dismiss', 'retry', 'open_browser_again', 'cancel_sign_in', 'sign_in']) {
      check(`the result of ${command}`, (await app.invoke(command)).json);
    }
    await app.screenshot('acme-01-signed-in');
    await app.click('#sign-out');
    await app.waitPhase('signedOut');
    assert.equal(await acmeSession(provider.issuer), null, 'sign-out forgot the session');
  });
});

test('with Latchkey running too, a redirect to either scheme reaches the right app only, and forged links are refused', async () => {
  // Latchkey as a plain process (its own single-instance name, its own scheme), logging what it gets.
  const latchkeyLog = path.join(WORK, 'latchkey-beside-acme.log');
  const out = fs.openSync(latchkeyLog, 'w');
  const latchkeyEnv = {
    ...process.env, LATCHKEY_ISSUER: provider.issuer, LATCHKEY_CLIENT_ID: 'latchkey-desktop',
    LATCHKEY_LOG: 'debug', GTK_USE_PORTAL: '0',
  };
  const latchkey = spawn(APP, [], { env: latchkeyEnv, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const log = () => fs.readFileSync(latchkeyLog, 'utf8');
  try {
    await withAcme(async (app) => {
      await app.waitPhase('signedOut');
      await waitFor('Latchkey to start', () => /start-up done/.test(log()), { timeoutMs: 20000 });
      const redemptions = (await provider.stats()).token_requests?.authorization_code ?? 0;

      // A Latchkey-scheme link goes to Latchkey's running instance: Acme shows nothing.
      assert.equal(await deliverTo(APP, 'com.example.latchkey:/callback?code=x&state=forged', latchkeyEnv), 0);
      await waitFor('Latchkey to reject the forged link', () => /redirect rejected/.test(log()), { timeoutMs: 15000 });
      assert.equal(await app.visibleText('#error'), null, 'Acme saw nothing of it');

      // An Acme-scheme link goes to Acme: refused visibly, never redeemed; Latchkey sees nothing.
      const before = log().match(/redirect rejected/g).length;
      assert.equal(await deliverTo(ACME, `${ACME_SCHEME}:/callback?code=x&state=forged`, app.env), 0);
      const error = await waitFor('Acme to show the rejection', () => app.visibleText('#error'));
      assert.match(error, /ignored|did not start|not/i);
      assert.equal(log().match(/redirect rejected/g).length, before, 'Latchkey saw nothing of it');
      // And an Acme link handed to Latchkey's binary is not Latchkey's business either.
      assert.equal(await deliverTo(APP, `${ACME_SCHEME}:/callback?code=x&state=forged`, latchkeyEnv), 0);
      assert.equal(log().match(/redirect rejected/g).length, before);
      assert.equal((await provider.stats()).token_requests?.authorization_code ?? 0, redemptions, 'no code redeemed');
      await app.screenshot('acme-02-forged-link');

      // A real sign-in still works with both running.
      await app.click('#sign-in');
      await app.waitPhase('signedIn', { timeoutMs: 60000 });
      assert.equal(log().match(/redirect rejected/g).length, before, 'the real redirect reached Acme only');
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    latchkey.kill('SIGTERM');
    await once(latchkey, 'exit').catch(() => {});
  }
});
