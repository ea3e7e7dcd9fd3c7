// Accessibility, proven (issue 12): axe-core's WCAG 2.1 AA rules in every phase of the real window,
// in the light and the dark scheme (screenshots of each as artifacts), and a keyboard-only run
// through sign-in, an account switch, Escape and sign-out, with the live region's announcements.
// Run through tests/window/run.sh (before app.test.mjs, which ends with a locked keyring).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { App, KEY, Provider, SCHEME, keychainItems, setBrowser, stopStrayApps, waitFor } from './lib/harness.mjs';

let main;
before(async () => {
  setBrowser({});
  main = await Provider.start({ name: 'a11y' });
});
after(async () => {
  setBrowser({});
  await stopStrayApps();
  await main?.stop();
});

async function checked(app, label) {
  await app.screenshot(`a11y-${label}`);
  assert.deepEqual(await app.axe(), [], `${label}: axe-core found WCAG 2.1 AA violations`);
}

const live = (app) => app.exec("return document.getElementById('live').textContent");

for (const scheme of ['light', 'dark']) {
  test(`axe-core finds no WCAG 2.1 AA violation in any phase (${scheme} scheme)`, async () => {
    // WebKitGTK follows the GTK theme's variant for prefers-color-scheme.
    const env = { GTK_THEME: scheme === 'dark' ? 'Adwaita:dark' : 'Adwaita' };
    let app = await App.launch({ issuer: main.issuer, env: { ...env, LATCHKEY_ISSUER: null, LATCHKEY_CLIENT_ID: null }, name: `a11y-setup-${scheme}` });
    try {
      const dark = await app.exec("return matchMedia('(prefers-color-scheme: dark)').matches");
      assert.equal(dark, scheme === 'dark', 'the page sees the scheme');
      await app.waitPhase('setup');
      // The checker can fail: an image without a text alternative is reported, then removed.
      await app.exec("const i = document.createElement('img'); i.id = 'axe-probe'; i.src = 'data:,'; document.body.append(i);");
      assert.ok((await app.axe()).some((v) => v.startsWith('image-alt')), 'axe reports a planted violation');
      await app.exec("document.getElementById('axe-probe').remove();");
      await checked(app, `setup-${scheme}`);
    } finally {
      await app.close();
    }
    app = await App.launch({ issuer: main.issuer, env, name: `a11y-${scheme}` });
    try {
      await app.waitPhase('signedOut');
      await checked(app, `signed-out-${scheme}`);
      assert.equal(await app.deliver(`${SCHEME}:/callback?code=x&state=forged`), 0);
      await app.waitBanner('foreign_callback');
      await checked(app, `error-banner-${scheme}`);
      await app.click('#banner-dismiss');
      setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '3000' });
      await app.click('#sign-in');
      await app.waitPhase('waiting');
      await checked(app, `waiting-${scheme}`);
      await app.click('#cancel');
      await app.waitPhase('signedOut');
      await waitFor('the notice', () => app.notice());
      await checked(app, `notice-${scheme}`);
      setBrowser({});
      await app.click('#sign-in');
      await app.waitPhase('signedIn', { timeoutMs: 60000 });
      await checked(app, `signed-in-${scheme}`);
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    } finally {
      setBrowser({});
      await app.close();
    }
  });
}

test('keyboard only: sign in, add and switch accounts, Escape cancels, sign out; each phase is announced', async () => {
  const userFile = path.join(process.env.XDG_CONFIG_HOME, 'latchkey', 'config.toml');
  const saved = fs.existsSync(userFile) ? fs.readFileSync(userFile, 'utf8') : null;
  const app = await App.launch({ issuer: main.issuer, name: 'a11y-keyboard' });
  try {
    await app.waitPhase('signedOut');
    await app.tabTo('#sign-in', KEY.ENTER);
    await app.waitPhase('signedIn', { timeoutMs: 60000 });
    await waitFor('the sign-in announced', async () => /Signed in as Alice Example/.test(await live(app)));

    setBrowser({ DRIVER_USER: 'bob' });
    await app.tabTo('#add-account', KEY.SPACE);
    await waitFor('Bob shown', async () => (await app.visibleText('#id-name')) === 'Bob Example', { timeoutMs: 60000 });
    setBrowser({});
    await app.tabTo('#account-list button[data-profile="default"]', KEY.ENTER);
    await waitFor('Alice shown', async () => (await app.visibleText('#id-name')) === 'Alice Example');
    await waitFor('the switch announced', async () => /Signed in as Alice Example/.test(await live(app)));

    await app.tabTo('#sign-out', KEY.ENTER);
    await app.waitPhase('signedOut');
    await waitFor('the sign-out announced', async () => /signed out/i.test(await live(app)));

    setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '3000' });
    await app.tabTo('#sign-in', KEY.ENTER);
    await app.waitPhase('waiting');
    await waitFor('the wait announced', async () => /Continue signing in/.test(await live(app)));
    await app.press(KEY.ESCAPE);
    await app.waitPhase('signedOut');
    await waitFor('the cancel announced', async () => /Sign-in cancelled/.test(await live(app)));
    setBrowser({});

    await app.tabTo('#account-list button[data-profile="account-2"]', KEY.ENTER);
    await waitFor('Bob shown', async () => (await app.visibleText('#id-name')) === 'Bob Example');
    await app.tabTo('#sign-out', KEY.ENTER);
    await app.waitPhase('signedOut');
    assert.deepEqual(await keychainItems(), [], 'both accounts signed out');
  } catch (e) {
    await app.screenshot(`a11y-keyboard-failure-${Date.now()}`).catch(() => {});
    throw new Error(`${e.stack ?? e}\n--- app log (tail) ---\n${app.logTail()}`, { cause: e });
  } finally {
    setBrowser({});
    await app.close();
    if (saved === null) fs.rmSync(userFile, { force: true }); else fs.writeFileSync(userFile, saved);
  }
});
