// The real-window suite: the debug app under tauri-driver + WebKitWebDriver, the dev provider,
// the headless-Chromium login driver as $BROWSER delivering the custom-scheme redirect the way the
// OS does (a second app process with the URL as its argument), and a private gnome-keyring.
// Run through tests/window/run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  APP, App, CLI, CLIENT_ID, appEnv, Provider, SCOPES, SCHEME, WORK, deadIssuer, driverEvents, keychainItems, launches,
  readSession, setBrowser, stopStrayApps, waitFor,
} from './lib/harness.mjs';

const SIGN_IN = { timeoutMs: 30000 };
const execFileP = promisify(execFile);
let main; // the dev provider, 1 h access tokens
let short; // a second dev provider issuing 6 s access tokens

before(async () => {
  setBrowser({});
  [main, short] = await Promise.all([
    Provider.start({ name: 'main' }),
    Provider.start({ name: 'short', env: { DEV_ACCESS_TOKEN_TTL: '6' } }),
  ]);
  // The user's config file: a description for the custom scope (env can't carry tables).
  const dir = path.join(process.env.XDG_CONFIG_HOME, 'latchkey');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.toml'), '[scope_descriptions]\n"api:read" = "Read your data through the API"\n');
});

after(async () => {
  await stopStrayApps();
  await Promise.all([main?.stop(), short?.stop()]);
});

async function withApp(opts, fn) {
  const app = await App.launch(opts);
  try {
    return await fn(app);
  } catch (e) {
    await app.screenshot(`failure-${Date.now()}`).catch(() => {});
    throw new Error(`${e.stack ?? e}\n--- app log (tail) ---\n${app.logTail()}`, { cause: e });
  } finally {
    await app.close();
  }
}

const scopesIn = (app, list) => app.exec(`return [...document.querySelectorAll(arguments[0] + ' li')]
  .map((li) => [li.dataset.scope, li.querySelector('.desc').textContent]);`, list);

async function signIn(app) {
  await app.waitPhase('signedOut');
  await app.click('#sign-in');
  await app.waitPhase('signedIn', SIGN_IN);
}

test('signs in as alice through the system browser, and shows who and what was granted', async () => {
  await withApp({ issuer: main.issuer }, async (app) => {
    await app.waitPhase('signedOut');
    assert.equal(await app.visibleText('#so-issuer'), main.issuer);
    assert.equal(await app.visibleText('#sign-in'), 'Sign in with your browser');
    await app.screenshot('01-signed-out');
    const before = launches().length;
    const pictures0 = (await main.stats()).picture_requests;

    await app.click('#sign-in');
    await app.waitPhase('signedIn', SIGN_IN);

    assert.equal(await app.visibleText('#id-name'), 'Alice Example');
    assert.match(await app.visibleText('#id-email'), /^alice@example\.com/);
    assert.equal(await app.visibleText('#id-subject'), 'alice');
    assert.equal(await app.visibleText('#id-issuer'), main.issuer);
    const granted = Object.fromEntries(await scopesIn(app, '#granted'));
    assert.deepEqual(Object.keys(granted).sort(), SCOPES.split(' ').sort());
    assert.equal(granted.email, 'See your email address');
    assert.equal(granted.offline_access, 'Stay signed in when you are not using the app');
    assert.equal(granted['api:read'], 'Read your data through the API');
    assert.equal(await app.visibleText('#not-granted-block'), null, 'nothing was refused');
    assert.match(await app.visibleText('#session-refresh'), /renewed automatically/);
    // The picture claim, fetched by the app's core and shown as a data: URL (the CSP loads nothing
    // remote), decoded by the webview into a real 48x48 image.
    const picture = await waitFor('the profile picture', () => app.exec(`const img = document.getElementById('id-picture');
      return !img.hidden && img.complete && img.naturalWidth > 0 ? { src: img.src, w: img.naturalWidth } : null;`));
    assert.match(picture.src, /^data:image\/png;base64,iVBORw0KGgo/);
    assert.equal(picture.w, 48);
    assert.equal(await app.visibleText('#id-initials'), null, 'initials give way to the picture');
    assert.equal((await main.stats()).picture_requests, pictures0 + 1, 'fetched once');
    await app.screenshot('02-signed-in');

    // One browser launch, for the authorization request, whose redirect came back by deep link.
    const mine = launches().slice(before);
    assert.equal(mine.length, 1);
    const auth = new URL(mine[0].url);
    assert.equal(auth.origin, main.issuer);
    assert.equal(auth.searchParams.get('redirect_uri'), `${SCHEME}:/callback`);
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
    const done = driverEvents().find((e) => e.event === 'done' && e.pid === mine[0].pid);
    assert.equal(done.result, 'custom-scheme');
    assert.equal(done.deliver_exit, 0, 'the second app process handed the URL over and exited');

    // Debug builds register the scheme for this executable (HOME is isolated here).
    const desktop = path.join(process.env.XDG_DATA_HOME, 'applications/latchkey-app-handler.desktop');
    const entry = fs.readFileSync(desktop, 'utf8');
    assert.match(entry, new RegExp(`MimeType=.*x-scheme-handler/${SCHEME.replaceAll('.', '\\.')}(;|$)`, 'm'));
    assert.ok(entry.includes(`"${fs.realpathSync(APP)}" %u`) || entry.includes(`"${APP}" %u`), entry);
  });
});

test('restart: the stored session signs in silently, with no browser', async () => {
  const before = launches().length;
  const stats0 = await main.stats();
  await withApp({ issuer: main.issuer }, async (app) => {
    const seen = new Set();
    await waitFor('signed in', async () => {
      const p = await app.phase();
      seen.add(p);
      return p === 'signedIn';
    }, { intervalMs: 20 });
    assert.ok(!seen.has('signedOut'), `no flash of signed-out: saw ${[...seen]}`);
    assert.equal(await app.visibleText('#id-name'), 'Alice Example');
    await sleep(500);
    assert.equal(launches().length, before, 'no browser was launched');
    const stats1 = await main.stats();
    assert.equal(stats1.authorization_requests, stats0.authorization_requests);
  });
});

test('the CLI shares the session: `latchkey token` and `status` work after signing in through the window', async () => {
  const stored = await readSession(main.issuer);
  const stats0 = await main.stats();
  const env = appEnv(main.issuer);
  const token = await execFileP(CLI, ['token'], { env });
  assert.equal(token.stdout.trim(), stored.access_token, 'the window\'s access token, from the shared keychain entry');
  const status = JSON.parse((await execFileP(CLI, ['status', '--json'], { env })).stdout);
  assert.equal(status.subject, 'alice');
  assert.equal(status.issuer, main.issuer);
  const stats1 = await main.stats();
  assert.equal(stats1.authorization_requests, stats0.authorization_requests, 'no new sign-in');
  assert.equal(stats1.token_requests.refresh_token, stats0.token_requests.refresh_token, 'a valid token is not refreshed');
});

test('no token reaches the webview: not in the DOM, not in any command result', async () => {
  const stored = await readSession(main.issuer);
  const secrets = { access_token: stored.access_token, refresh_token: stored.refresh_token, id_token: stored.id_token };
  for (const [k, v] of Object.entries(secrets)) assert.ok(v && v.length > 10, `${k} stored`);

  await withApp({ issuer: main.issuer }, async (app) => {
    await app.waitPhase('signedIn');
    const check = (where, text) => {
      for (const [k, v] of Object.entries(secrets)) assert.ok(!text.includes(v), `${k} found in ${where}`);
    };
    check('the DOM', await app.html());
    const calls = [
      ['get_state', {}],
      ['dismiss', {}],
      ['retry', {}],
      ['open_browser_again', {}],
      ['cancel_sign_in', {}],
      ['sign_in', {}],
      ['save_settings', { form: { issuer: main.issuer, clientId: CLIENT_ID, scopes: SCOPES } }],
      ['sign_out', { alsoProvider: false }],
    ];
    for (const [command, args] of calls) {
      const r = await app.invoke(command, args);
      assert.ok(typeof r.json === 'string', `${command} answered`);
      check(`the result of ${command}`, r.json);
      if (command === 'get_state') assert.match(r.json, /"phase":"signedIn"/);
    }
    check('the DOM after all commands', await app.html());
    await app.waitPhase('signedOut');
  });
});

test('sign out revokes at the provider, forgets the keychain entry, and can end the provider session', async () => {
  await withApp({ issuer: main.issuer }, async (app) => {
    await signIn(app);
    const stored = await readSession(main.issuer);
    assert.equal((await main.introspect(stored.refresh_token)).active, true);
    assert.equal((await keychainItems()).length > 0, true);
    const stats0 = await main.stats();
    const before = launches().length;

    await app.click('#also-provider');
    await app.click('#sign-out');
    await app.waitPhase('signedOut');

    assert.match(await app.visibleText('#notice-message'), /revoked/);
    const stats1 = await main.stats();
    assert.equal(stats1.revocations, stats0.revocations + 1);
    assert.equal((await main.introspect(stored.refresh_token)).active, false);
    assert.deepEqual(await keychainItems(), [], 'secret-tool finds nothing under service latchkey');
    await app.screenshot('05-signed-out-after-sign-out');

    // "Also sign out of the provider": the end-session URL went to the browser from Rust...
    const launch = await waitFor('the end-session launch', () =>
      launches().slice(before).find((l) => l.url.startsWith(`${main.issuer}/session/end`)));
    assert.ok(new URL(launch.url).searchParams.get('id_token_hint'));
    await waitFor('the provider to end its session', async () =>
      (await main.stats()).end_session_requests > stats0.end_session_requests);
    // ...and never to the window.
    const html = await app.html();
    assert.ok(!html.includes('id_token_hint') && !html.includes(stored.id_token));
  });
});

test('granted vs requested: a scope unchecked at the provider shows as requested but not granted', async () => {
  setBrowser({ DRIVER_UNCHECK: 'api:read', DRIVER_USER: 'bob' });
  try {
    await withApp({ issuer: main.issuer }, async (app) => {
      await signIn(app);
      // bob has no picture claim: his initials stand in.
      assert.equal(await app.visibleText('#id-name'), 'Bob Example');
      assert.equal(await app.visibleText('#id-initials'), 'BE');
      assert.equal(await app.exec('return document.getElementById("id-picture").hidden'), true);
      const granted = Object.fromEntries(await scopesIn(app, '#granted'));
      assert.ok(!('api:read' in granted), 'api:read not granted');
      assert.ok('email' in granted);
      assert.notEqual(await app.visibleText('#not-granted-block'), null);
      assert.deepEqual(await scopesIn(app, '#not-granted'), [['api:read', 'Read your data through the API']]);
      await app.screenshot('06-requested-not-granted');
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    setBrowser({});
  }
});

test('forged, malformed, foreign and stale deep links are rejected visibly and never redeemed', async () => {
  const stats0 = await main.stats();
  await withApp({ issuer: main.issuer }, async (app) => {
    await app.waitPhase('signedOut');

    assert.equal(await app.deliver(`${SCHEME}:/callback?code=x&state=forged`), 0);
    let b = await app.waitBanner('foreign_callback');
    assert.equal(b.title, 'A sign-in link was ignored');
    assert.match(b.message, /earlier window|does not belong/);
    assert.equal(await app.phase(), 'signedOut');
    await app.screenshot('07-forged-link');
    await app.click('#banner-dismiss');
    await waitFor('banner gone', async () => (await app.banner()) === null);

    // Malformed: the deep-link plugin can't parse it, so it arrives through single-instance argv.
    await app.deliver(`${SCHEME}://[oops`);
    b = await app.waitBanner('foreign_callback');
    assert.match(b.message, /malformed/);
    await app.click('#banner-dismiss');

    await app.deliver(`${SCHEME}:/callback?state=${'A'.repeat(20000)}`);
    b = await app.waitBanner('foreign_callback');
    assert.match(b.message, /too long/);
    await app.click('#banner-dismiss');

    // Not our scheme: ignored, and the app keeps working.
    await app.deliver('https://evil.example/callback?code=x&state=y');
    await sleep(500);
    assert.equal(await app.banner(), null);
    assert.equal((await app.invoke('get_state')).ok, true);
    assert.equal(await app.phase(), 'signedOut');
  });

  // Cold start with a redirect in argv (the window was closed during sign-in).
  await withApp({ issuer: main.issuer, args: [`${SCHEME}:/callback?code=late&state=from-an-earlier-window`] }, async (app) => {
    const b = await app.waitBanner('foreign_callback');
    assert.match(b.message, /started by an earlier window/);
    assert.equal(await app.phase(), 'signedOut', 'never half signed in');
    await app.screenshot('08-cold-start-link');
  });

  const stats1 = await main.stats();
  assert.equal(stats1.token_requests.authorization_code, stats0.token_requests.authorization_code,
    'the provider never saw a token request for these links');
});

test('cancel while waiting for the browser, then sign in again', async () => {
  setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '5000' });
  try {
    await withApp({ issuer: main.issuer }, async (app) => {
      await app.waitPhase('signedOut');
      const before = launches().length;
      await app.click('#sign-in');
      await app.waitPhase('waiting');
      assert.match(await app.visibleText('#waiting-text'), /Finish signing in there/);
      assert.equal(await app.visibleText('#w-provider-name'), `127.0.0.1:${main.port}`);
      await waitFor('the browser launch', () => launches().length > before);
      await app.screenshot('03-waiting-for-browser');

      // A forged link while waiting is ignored; the real sign-in keeps waiting.
      await app.deliver(`${SCHEME}:/callback?code=x&state=forged`);
      const b = await app.waitBanner('foreign_callback');
      assert.match(b.message, /does not belong to the sign-in in progress/);
      assert.equal(await app.phase(), 'waiting');

      // "Copy sign-in link" copies, or shows the link selected for Ctrl+C.
      await app.click('#copy-link');
      await waitFor('copied', async () => (await app.visibleText('#copy-link')) === 'Copied'
        || (await app.exec('return !document.getElementById("w-link").hidden')));
      const link = await app.exec('return document.getElementById("w-link").value');
      assert.equal(new URL(link).origin, main.issuer);

      await app.click('#cancel');
      await app.waitPhase('signedOut');
      assert.match(await app.visibleText('#notice-message'), /cancelled/i);
      await app.screenshot('04-cancelled');

      setBrowser({});
      await app.click('#sign-in');
      await app.waitPhase('signedIn', SIGN_IN);
      assert.equal(await app.visibleText('#id-name'), 'Alice Example');
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    setBrowser({});
  }
});

test('a sign-in not finished within login_timeout returns to signed-out with a message', async () => {
  setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '4000' });
  try {
    await withApp({ issuer: main.issuer, env: { LATCHKEY_LOGIN_TIMEOUT: '10' } }, async (app) => {
      await app.waitPhase('signedOut');
      await app.click('#sign-in');
      await app.waitPhase('waiting');
      await app.waitPhase('signedOut', { timeoutMs: 20000 });
      const b = await app.waitBanner('timed_out');
      assert.match(b.message, /not finished within 10 seconds/);
      await app.screenshot('09-timed-out');
    });
  } finally {
    setBrowser({});
  }
});

test('an access token expiring while the app runs is refreshed without the user noticing', async () => {
  await withApp({ issuer: short.issuer }, async (app) => {
    await signIn(app);
    const expiry = () => app.exec('return document.getElementById("session-expiry").dataset.expiresAt');
    const exp0 = await expiry();
    const stats0 = await short.stats();
    const deadline = Date.now() + 9000;
    while (Date.now() < deadline) {
      assert.equal(await app.phase(), 'signedIn');
      assert.equal(await app.banner(), null);
      assert.equal(await app.notice(), null);
      await sleep(200);
    }
    const stats1 = await short.stats();
    assert.ok(stats1.token_requests.refresh_token > stats0.token_requests.refresh_token,
      `refreshed (${stats0.token_requests.refresh_token} -> ${stats1.token_requests.refresh_token})`);
    assert.equal(stats1.token_errors.invalid_grant ?? 0, stats0.token_errors.invalid_grant ?? 0);
    const exp1 = await expiry();
    assert.ok(new Date(exp1) > new Date(exp0), `a later expiry: ${exp0} -> ${exp1}`);
    await app.screenshot('10-refreshed-while-running');
  });
});

test('provider down at start-up: stays signed in and retries; a provider that lost the grant signs out', async () => {
  await short.stop();
  const stored = await readSession(short.issuer);
  assert.ok(stored, 'a session from the previous test');
  await waitFor('the access token to expire', () => Date.now() > Date.parse(stored.expires_at) + 300,
    { timeoutMs: 10000 });
  const before = launches().length;
  await withApp({ issuer: short.issuer }, async (app) => {
    await app.waitPhase('signedIn', { timeoutMs: 20000 });
    const n = await waitFor('the retry notice', () => app.notice());
    assert.equal(n.kind, 'refreshRetry');
    assert.match(n.message, /Couldn't refresh the session/);
    assert.equal(await app.visibleText('#id-name'), 'Alice Example');
    assert.equal(launches().length, before, 'no browser');
    await app.screenshot('11-provider-down-at-start-up');

    // The provider comes back without its grants (it keeps them in memory): the refresh gets
    // invalid_grant and the session ends, with the reason.
    short = await short.restart();
    await app.click('#notice-retry');
    await app.waitPhase('signedOut');
    const b = await app.waitBanner('session_expired');
    assert.match(b.message, /ended the session/);
    assert.deepEqual(await keychainItems(), []);
    await app.screenshot('12-session-ended');
  });
});

test('provider down at sign-in: a clear banner, no browser', async () => {
  const dead = await deadIssuer();
  const before = launches().length;
  await withApp({ issuer: dead }, async (app) => {
    await app.waitPhase('signedOut');
    await app.click('#sign-in');
    const b = await app.waitBanner('provider_unreachable', { timeoutMs: 20000 });
    assert.equal(b.title, "Can't reach the sign-in provider");
    assert.equal(await app.phase(), 'signedOut');
    assert.equal(await app.visibleText('#banner-retry'), 'Try again');
    assert.equal(launches().length, before);
    await app.screenshot('13-provider-down-at-sign-in');
  });
});

test('first run: the form checks the provider before saving; managed keys are read-only', async () => {
  const system = path.join(WORK, 'managed.toml');
  const user = path.join(WORK, 'first-run', 'config.toml');
  fs.writeFileSync(system, `client_id = "${CLIENT_ID}"\nlocked = ["client_id"]\n`);
  const env = {
    LATCHKEY_ISSUER: null, LATCHKEY_CLIENT_ID: null, LATCHKEY_SCOPES: null,
    LATCHKEY_CONFIG: user, LATCHKEY_SYSTEM_CONFIG: system,
  };
  await withApp({ issuer: main.issuer, env }, async (app) => {
    await app.waitPhase('setup');
    assert.equal(await app.exec('return document.getElementById("f-client").readOnly'), true);
    assert.equal(await app.exec('return document.getElementById("f-client").value'), CLIENT_ID);
    assert.match(await app.visibleText('#f-client-note'), /Managed by your organization/);
    await app.screenshot('00-first-run');

    await app.type('#f-issuer', await deadIssuer());
    await app.click('#save-settings');
    const err = await waitFor('the form error', () => app.visibleText('#form-error'), { timeoutMs: 20000 });
    assert.match(err, /reach|connect/i);
    assert.equal(fs.existsSync(user), false, 'nothing saved for an unreachable issuer');

    await app.type('#f-issuer', main.issuer);
    await app.type('#f-scopes', 'openid profile email');
    await app.click('#save-settings');
    await app.waitPhase('signedOut', { timeoutMs: 20000 });
    assert.equal(await app.visibleText('#so-issuer'), main.issuer);
    const saved = fs.readFileSync(user, 'utf8');
    assert.match(saved, new RegExp(`issuer = "${main.issuer}"`));
    assert.ok(!saved.includes('client_id'), 'the managed key is not copied into the user file');
  });
});

test('a debug run does not take the scheme from another installed handler', async () => {
  const apps = path.join(process.env.XDG_DATA_HOME, 'applications');
  const mimeapps = path.join(process.env.XDG_CONFIG_HOME, 'mimeapps.list');
  const ours = path.join(apps, 'latchkey-app-handler.desktop');
  const saved = { mimeapps: fs.readFileSync(mimeapps, 'utf8'), ours: fs.readFileSync(ours, 'utf8') };
  try {
    // "Installed" Latchkey: another desktop file owns the scheme.
    fs.writeFileSync(path.join(apps, 'Latchkey.desktop'),
      `[Desktop Entry]\nType=Application\nName=Latchkey\nExec=/opt/latchkey/latchkey-app %u\nMimeType=x-scheme-handler/${SCHEME};\n`);
    fs.writeFileSync(mimeapps, `[Default Applications]\nx-scheme-handler/${SCHEME}=Latchkey.desktop\n`);
    fs.rmSync(ours);
    await withApp({ issuer: main.issuer }, async (app) => {
      await app.waitPhase('signedOut');
      await sleep(1500); // registration runs on its own thread at start-up
      assert.match(fs.readFileSync(mimeapps, 'utf8'), new RegExp(`${SCHEME.replaceAll('.', '\\.')}=Latchkey\\.desktop`));
      assert.equal(fs.existsSync(ours), false, 'no handler file written for the debug build');
    });
  } finally {
    fs.rmSync(path.join(apps, 'Latchkey.desktop'), { force: true });
    fs.writeFileSync(mimeapps, saved.mimeapps);
    fs.writeFileSync(ours, saved.ours);
  }
});
