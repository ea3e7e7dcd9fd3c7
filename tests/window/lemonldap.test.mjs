// The app in the real window against the second real provider, LemonLDAP::NG (issue 8): sign-in
// through the system browser with the app's scheme redirect, the identity and grants shown, the
// session in the keychain, and sign-out. The CLI's LemonLDAP::NG suite is tests/e2e/tests/lemonldap.rs;
// its quirks are listed in tests/README.md. Run through tests/window/run.sh.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { App, ROOT, keychainItems, readSession, setBrowser, stopStrayApps, waitFor } from './lib/harness.mjs';

let lemon;

/** tests/lemonldap/start, waited for until its READY line (the issuer, with its trailing slash). */
async function startLemon() {
  const child = spawn(path.join(ROOT, 'tests/lemonldap/start'), ['--bypass-consent'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const issuer = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`LemonLDAP::NG did not start in 60 s:\n${stderr}`)), 60000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^READY (\S+)/m);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`LemonLDAP::NG exited (${code}):\n${stderr}`)); });
  });
  return { child, issuer };
}

after(async () => {
  setBrowser({});
  await stopStrayApps();
  if (lemon) {
    lemon.child.kill('SIGTERM');
    await new Promise((r) => { lemon.child.once('exit', r); setTimeout(r, 5000); });
  }
});

test('LemonLDAP::NG: the app signs in as dwho through the system browser, shows the grants, and signs out', async () => {
  lemon = await startLemon();
  setBrowser({ DRIVER_USER: 'dwho', DRIVER_PASSWORD: 'dwho' });
  const app = await App.launch({
    issuer: lemon.issuer,
    env: { LATCHKEY_SCOPES: 'openid profile email' },
    name: 'lemonldap',
  });
  try {
    await app.waitPhase('signedOut');
    await app.click('#sign-in');
    await app.waitPhase('signedIn', { timeoutMs: 60000 });
    assert.equal(await app.visibleText('#id-subject'), 'dwho');
    assert.equal(await app.visibleText('#id-issuer'), lemon.issuer);
    const granted = await app.exec("return [...document.querySelectorAll('#granted li')].map((li) => li.dataset.scope)");
    assert.ok(granted.includes('openid') && granted.includes('email'), `granted: ${granted}`);
    const stored = await readSession(lemon.issuer);
    assert.equal(stored.claims.sub, 'dwho');
    await app.screenshot('lemonldap-signed-in');
    await app.click('#sign-out');
    await app.waitPhase('signedOut');
    await waitFor('the session forgotten', async () => (await keychainItems()).length === 0);
  } catch (e) {
    await app.screenshot(`lemonldap-failure-${Date.now()}`).catch(() => {});
    throw new Error(`${e.stack ?? e}\n--- app log (tail) ---\n${app.logTail()}`, { cause: e });
  } finally {
    setBrowser({});
    await app.close();
  }
});
