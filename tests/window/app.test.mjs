// The real-window suite: the debug app under tauri-driver + WebKitWebDriver, the dev provider,
// the headless-Chromium login driver as $BROWSER delivering the custom-scheme redirect the way the
// OS does (a second app process with the URL as its argument), and a private gnome-keyring.
// Run through tests/window/run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  APP, App, CLI, CLIENT_ID, appEnv, clearKeychain, Provider, SCOPES, SCHEME, WORK, deadIssuer, driverEvents, keychainItems, launches,
  lockKeyring, readSession, setBrowser, stopStrayApps, unlockKeyring, waitFor,
} from './lib/harness.mjs';

const SIGN_IN = { timeoutMs: 60000 };
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
  // RP-initiated logout as the README documents it: the provider sends the browser back to
  // <scheme>:/logout, which the OS delivers to the app like a sign-in redirect (issue 8, finding 9).
  const env = { LATCHKEY_POST_LOGOUT_REDIRECT_URI: `${SCHEME}:/logout` };
  await withApp({ issuer: main.issuer, env }, async (app) => {
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
    // The provider's return reached the app, matched to this sign-out: no "link ignored" banner.
    assert.ok(new URL(launch.url).searchParams.get('state'), 'the end-session request carries state');
    await waitFor('the logout return to be recognised', async () =>
      /Signed out of the provider/.test(await app.visibleText('#notice-message') ?? ''), { timeoutMs: 20000 });
    assert.equal(await app.banner(), null, 'no error banner after the provider sign-out');
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

// Issue 12: any provider. With `app_redirect = "loopback"` (for providers that refuse private-use
// schemes, like Google) the app listens on 127.0.0.1 as the CLI does (RFC 8252 §7.3); waiting,
// cancel and the browser's last page work as for the scheme.
test('app_redirect = loopback: the app takes the redirect on 127.0.0.1 and the browser sends the user back', async () => {
  const portOpen = (port) => new Promise((resolve) => {
    const sock = net.connect(Number(port), '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
  await withApp({ issuer: main.issuer, env: { LATCHKEY_APP_REDIRECT: 'loopback' } }, async (app) => {
    await app.waitPhase('signedOut');
    const before = driverEvents().length;
    await app.click('#sign-in');
    await app.waitPhase('signedIn', SIGN_IN);
    assert.equal(await app.visibleText('#id-name'), 'Alice Example');
    const events = driverEvents().slice(before);
    const redirect = new URL(new URL(events.find((e) => e.event === 'launch').url).searchParams.get('redirect_uri'));
    assert.equal(redirect.origin.startsWith('http://127.0.0.1:'), true, redirect.href);
    assert.equal(redirect.pathname, '/callback');
    const done = await waitFor('the driver to finish', () => driverEvents().slice(before).find((e) => e.event === 'done'));
    assert.equal(done.result, 'loopback');
    assert.match(done.body, /return to Latchkey/, 'the last page sends the user back to the app');
    await app.click('#sign-out');
    await app.waitPhase('signedOut');

    // Cancel closes the listener.
    setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '2000' });
    const mark = driverEvents().length;
    await app.click('#sign-in');
    await app.waitPhase('waiting');
    const launch = await waitFor('the launch', () => driverEvents().slice(mark).find((e) => e.event === 'launch'));
    const port = new URL(new URL(launch.url).searchParams.get('redirect_uri')).port;
    assert.equal(await portOpen(port), true, 'listening while waiting');
    await app.click('#cancel');
    await app.waitPhase('signedOut');
    await waitFor('the listener to close', async () => !(await portOpen(port)));
  });
  setBrowser({});
});

// Issue 12: the choice in plain words. The first-run form picks "a local address" for a Google
// issuer; while waiting, "Use a local address instead" saves `app_redirect = "loopback"` for the
// account and signs in again that way.
test('the redirect choice: suggested for Google in the form, and switchable while waiting', async () => {
  const userFile = path.join(process.env.XDG_CONFIG_HOME, 'latchkey', 'config.toml');
  const saved = fs.readFileSync(userFile, 'utf8');
  try {
    await withApp({ issuer: main.issuer, env: { LATCHKEY_ISSUER: null, LATCHKEY_CLIENT_ID: null }, name: 'redirect-form' }, async (app) => {
      await app.waitPhase('setup');
      assert.equal(await app.exec('return document.getElementById("f-redirect-scheme").checked'), true);
      await app.type('#f-issuer', 'https://accounts.google.com');
      await waitFor('loopback suggested', () => app.exec('return document.getElementById("f-redirect-loopback").checked'));
      assert.match(await app.visibleText('#f-redirect-note'), /Google does not accept app links/);
    });
    await withApp({ issuer: main.issuer, name: 'redirect-switch' }, async (app) => {
      await app.waitPhase('signedOut');
      setBrowser({ DRIVER_ACTION: 'none', DRIVER_HOLD_MS: '1000' });
      const first = driverEvents().length;
      await app.click('#sign-in');
      await app.waitPhase('waiting');
      await waitFor('the first launch', () => driverEvents().slice(first).find((e) => e.event === 'launch'));
      assert.ok(await app.visibleText('#w-loopback'), 'the switch is offered');
      setBrowser({});
      const mark = driverEvents().length;
      await app.click('#use-loopback');
      await app.waitPhase('signedIn', SIGN_IN);
      const launch = driverEvents().slice(mark).find((e) => e.event === 'launch');
      assert.match(new URL(launch.url).searchParams.get('redirect_uri'), /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      assert.match(fs.readFileSync(userFile, 'utf8'), /app_redirect = "loopback"/);
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    setBrowser({});
    fs.writeFileSync(userFile, saved);
  }
});

// Issue 12: a Google-like "installed app" client (a secret that ships with the app, loopback
// redirects only) works in the window end to end. Issue 7: the Session card says how the person
// signed in, and a pushed authorization request (PAR) shows there.
test('an installed-app client with a secret signs in over loopback, and the Session card says how', async () => {
  await withApp({
    issuer: main.issuer,
    env: {
      LATCHKEY_CLIENT_ID: 'latchkey-installed',
      LATCHKEY_CLIENT_SECRET: 'installed-app-secret-not-confidential',
      LATCHKEY_APP_REDIRECT: 'loopback',
    },
    name: 'installed-client',
  }, async (app) => {
    const before = (await main.get('/__dev/token_requests')).length;
    await signIn(app);
    const redeemed = (await main.get('/__dev/token_requests')).slice(before)
      .filter((r) => r.grant_type === 'authorization_code');
    assert.equal(redeemed.length, 1);
    assert.match(redeemed[0].client_auth, /^client_secret_(basic|post)$/, 'the secret went to the token endpoint');
    assert.match(await app.visibleText('#session-obtained'), /authorization code with PKCE/);
    await app.click('#sign-out');
    await app.waitPhase('signedOut');
  });
  const par = await Provider.start({ name: 'par', env: { DEV_PAR: 'on' } });
  try {
    await withApp({ issuer: par.issuer, name: 'par' }, async (app) => {
      await signIn(app);
      assert.match(await app.visibleText('#session-obtained'), /pushed request \(PAR\)/);
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    await par.stop();
  }
});

// Issue 12: every granted permission, from where it really is. A sign-in for the dev provider's
// API resource gets a JWT access token with Keycloak, Entra, Okta and Auth0 shapes; the ID token
// and userinfo carry groups and entitlements. The Roles and groups card shows each with its source.
test('the Roles and groups card shows each provider shape with its source', async () => {
  await withApp({ issuer: main.issuer, env: { LATCHKEY_EXTRA_AUTH_PARAMS: 'resource=urn:latchkey:api' }, name: 'grants' }, async (app) => {
    await signIn(app);
    assert.notEqual(await app.visibleText('#claims-title'), null, 'the card is shown');
    const items = await app.exec(`return [...document.querySelectorAll('#claims li')]
      .map((li) => [li.dataset.claim, li.dataset.source, li.querySelector('.mono').textContent, li.textContent]);`);
    const has = (claim, source, value) => items.some(([c, s, v]) => c === claim && s === source && v === value);
    for (const [claim, source, value] of [
      ['realm_access.roles', 'access token', 'developer'],
      ['resource_access.latchkey-desktop.roles', 'access token', 'reader'],
      ['roles', 'access token', 'Orders.Approver'],
      ['wids', 'access token', '62e90394-69f5-4237-9190-012177145e10'],
      ['scp', 'access token', 'api:read'],
      ['permissions', 'access token', 'read:reports'],
      ['https://latchkey.example/roles', 'access token', 'admin'],
      ['groups', 'ID token', 'engineering'],
      ['groups', 'userinfo', 'on-call'],
      ['entitlements', 'userinfo', 'urn:latchkey:entitlement:beta'],
    ]) {
      assert.ok(has(claim, source, value), `${value} from the ${source}, ${claim}: ${JSON.stringify(items)}`);
    }
    assert.ok(items.some(([c, , , text]) => c === 'wids' && /Global Administrator/.test(text)), 'the directory role by name');
    const kinds = await app.exec("return [...document.querySelectorAll('#claims dt')].map((dt) => dt.textContent)");
    for (const k of ['Roles', 'Groups', 'Directory roles (Entra ID)', 'Permissions', 'Entitlements', 'Access token scopes']) {
      assert.ok(kinds.includes(k), `${k} in ${kinds}`);
    }
    await app.screenshot('15-grants');
    await app.click('#sign-out');
    await app.waitPhase('signedOut');
  });
});

// Issue 12: the identity stays current. Userinfo is fetched again after each silent refresh, so
// a name changed at the provider shows without a new sign-in.
test('a name changed at the provider shows after the next silent refresh, with no new sign-in', async () => {
  const p = await Provider.start({ name: 'rename', env: { DEV_ACCESS_TOKEN_TTL: '6' } });
  try {
    await withApp({ issuer: p.issuer, name: 'rename' }, async (app) => {
      await signIn(app);
      const launched = launches().length;
      await p.post('/__dev/users/alice', { name: 'Alice Renamed' });
      await waitFor('the new name', async () => (await app.visibleText('#id-name')) === 'Alice Renamed', { timeoutMs: 25000 });
      assert.equal(launches().length, launched, 'no browser: a silent refresh');
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    await p.stop();
  }
});

// Issue 7: the app signs in with the hybrid flow too (response_mode=fragment on its scheme: the
// front-channel ID token is checked before the code is redeemed), and says so on the Session card.
// Issue 18, M4: the hybrid response carries an ID token, which a link of the app's scheme would put
// in a new process's argv (readable by every local user), so the window signs in through its
// loopback listener with form_post instead.
test('the hybrid flow in the window: the response posted to the loopback listener, never in a link, shown on the Session card', async () => {
  await withApp({ issuer: main.issuer, env: { LATCHKEY_FLOW: 'hybrid' }, name: 'hybrid' }, async (app) => {
    const before = launches().length;
    await signIn(app);
    const auth = new URL(launches()[before].url);
    assert.equal(auth.searchParams.get('response_type'), 'code id_token');
    assert.equal(auth.searchParams.get('response_mode'), 'form_post');
    assert.match(auth.searchParams.get('redirect_uri'), /^http:\/\/127\.0\.0\.1:\d+\//);
    assert.match(await app.visibleText('#session-obtained'), /hybrid flow/);
    await app.click('#sign-out');
    await app.waitPhase('signedOut');
  });
});

// Issue 7: with a provider that offers DPoP, the app's tokens are bound to a key kept in the
// keychain only; the Session card says so with the key's short thumbprint, and neither the key
// nor a token reaches the webview.
test('DPoP in the window: bound tokens, the thumbprint on the Session card, no key in the webview', async () => {
  const p = await Provider.start({ name: 'dpop', env: { DEV_DPOP: 'on' } });
  try {
    await withApp({ issuer: p.issuer, name: 'dpop' }, async (app) => {
      await signIn(app);
      const stored = await readSession(p.issuer);
      assert.ok(stored.dpop_key && stored.dpop_jkt, 'a DPoP key and its thumbprint in the keychain');
      assert.match(stored.token_type, /^dpop$/i);
      assert.match(await app.visibleText('#session-obtained'), new RegExp(`bound to this device \\(DPoP, key ${stored.dpop_jkt.slice(0, 8)}`));
      const secrets = [stored.dpop_key, stored.access_token, stored.refresh_token, stored.id_token].filter(Boolean);
      const check = (where, text) => secrets.forEach((x) => assert.ok(!text.includes(x), `a secret in ${where}`));
      check('the DOM', await app.html());
      for (const command of ['get_state', 'dismiss', 'retry']) check(command, (await app.invoke(command)).json);
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
    });
  } finally {
    await p.stop();
  }
});

// Issue 12: several accounts. The second account is a new `[profiles.account-2]` with the same
// provider; the switcher lists what `latchkey accounts` lists; sign-out acts on the shown account,
// "Sign out of all accounts" on every one.
test('several accounts: add one, switch in one click, sign out one, then all', async () => {
  const userFile = path.join(process.env.XDG_CONFIG_HOME, 'latchkey', 'config.toml');
  const saved = fs.readFileSync(userFile, 'utf8');
  const list = (app) => app.exec(`return [...document.querySelectorAll('#account-list button')]
    .map((b) => [b.dataset.profile, b.querySelector('.acc-name').textContent, b.getAttribute('aria-current')]);`);
  try {
    await withApp({ issuer: main.issuer }, async (app) => {
      const cli = (...args) => execFileP(CLI, args, { env: app.env }).then((r) => ({ code: 0, ...r }), (e) => e);
      await signIn(app);
      setBrowser({ DRIVER_USER: 'bob' });
      await app.click('#add-account');
      // Not waitPhase('signedIn'): it still holds from alice, shown until the new sign-in starts.
      await app.waitSignedIn('account-2', SIGN_IN);
      assert.equal(await app.visibleText('#id-name'), 'Bob Example');
      assert.match(fs.readFileSync(userFile, 'utf8'), /\[profiles\.account-2\]/);
      const both = [['account-2', 'Bob Example', 'true'], ['default', 'Alice Example', null]];
      await waitFor('both accounts listed, bob current', async () =>
        JSON.stringify(await list(app)) === JSON.stringify(both));
      const listed = JSON.parse((await cli('accounts', '--json')).stdout);
      assert.deepEqual(listed.map((a) => a.profile).sort(), ['account-2', 'default'], 'the same list as `latchkey accounts`');
      await app.screenshot('14-two-accounts');

      // One click shows the other account, from the keychain: no browser.
      const before = launches().length;
      await app.click('#account-list button[data-profile="default"]');
      await waitFor('Alice shown', async () => (await app.visibleText('#id-name')) === 'Alice Example');
      // The switcher's current mark follows in a later view update than the name: wait for it
      // too, never assert an intermediate state.
      await waitFor('Alice marked current', async () =>
        JSON.stringify((await list(app)).map((a) => a[2])) === JSON.stringify([null, 'true']));
      assert.equal(launches().length, before, 'no browser for a switch');
      for (const profile of ['default', 'account-2']) {
        assert.equal((await cli('--profile', profile, 'token')).code, 0, `latchkey --profile ${profile} token`);
      }

      // Sign out acts on the shown account only.
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
      assert.deepEqual(await list(app), [['account-2', 'Bob Example', null]]);
      assert.equal((await cli('--profile', 'account-2', 'token')).code, 0, 'the other account is still signed in');
      assert.equal((await cli('token')).code, 1, 'the shown one is signed out');

      // Sign in again, then out of all accounts.
      setBrowser({});
      await signIn(app);
      await waitFor('both accounts listed', async () => (await list(app)).length === 2);
      await app.click('#sign-out-all');
      await app.waitPhase('signedOut');
      await waitFor('nothing listed', async () => (await list(app)).length === 0);
      assert.deepEqual(await keychainItems(), [], 'every account is gone from the keychain');
      assert.match(await app.visibleText('#notice-message'), /all accounts/);
    });
  } finally {
    setBrowser({});
    fs.writeFileSync(userFile, saved);
  }
});

// Issue 12: every account refreshes at its own time in the background, and one account's failure
// shows on that account only.
test('background accounts refresh by themselves, and a failure stays on its account', async () => {
  const p = await Provider.start({ name: 'background', env: { DEV_ACCESS_TOKEN_TTL: '6' } });
  const userFile = path.join(process.env.XDG_CONFIG_HOME, 'latchkey', 'config.toml');
  const saved = fs.readFileSync(userFile, 'utf8');
  const list = (app) => app.exec(`return [...document.querySelectorAll('#account-list button')]
    .map((b) => ({ profile: b.dataset.profile, problem: b.querySelector('.acc-problem')?.textContent ?? null }));`);
  try {
    await withApp({ issuer: p.issuer, name: 'background' }, async (app) => {
      await signIn(app);
      setBrowser({ DRIVER_USER: 'bob' });
      await app.click('#add-account');
      await waitFor('Bob shown', async () => (await app.visibleText('#id-name')) === 'Bob Example', { timeoutMs: 30000 });
      setBrowser({});
      await app.click('#account-list button[data-profile="default"]');
      await waitFor('Alice shown', async () => (await app.visibleText('#id-name')) === 'Alice Example');
      // Bob, not shown, refreshes in the background: the provider sees his refresh tokens used.
      const refreshes = async () => (await p.get('/__dev/token_requests'))
        .filter((r) => r.grant_type === 'refresh_token').length;
      const r0 = await refreshes();
      await waitFor('refreshes of both accounts', async () => (await refreshes()) >= r0 + 2, { timeoutMs: 20000 });
      // Bob's grant is revoked at the provider: his next refresh fails, on his entry only.
      await p.post('/__dev/revoke_grants', { sub: 'bob' });
      await waitFor('the problem on Bob\'s entry', async () =>
        (await list(app)).some((a) => a.profile === 'account-2' && a.problem), { timeoutMs: 25000 });
      assert.equal(await app.phase(), 'signedIn');
      assert.equal(await app.visibleText('#id-name'), 'Alice Example');
      assert.equal(await app.banner(), null, 'no banner for the shown account');
      await app.click('#sign-out-all').catch(() => app.click('#sign-out'));
      await app.waitPhase('signedOut');
    });
  } finally {
    setBrowser({});
    fs.writeFileSync(userFile, saved);
    await p.stop();
  }
});

// Issue 8: logs never hold a secret, proven for the app as for the CLI (tests/e2e/tests/logs.rs).
// A whole session at LATCHKEY_LOG=trace: sign-in, a silent refresh with rotation, sign-out with
// revocation, a provider that lost the grant (invalid_grant), and a locked keychain; then every
// token read from the keychain, and every code and PKCE verifier the provider received, is
// looked for in everything the app wrote. Last in the file: it leaves the keyring locked.
test('trace logs of a whole app session hold no secret', async () => {
  let p = await Provider.start({ name: 'logscan', env: { DEV_ACCESS_TOKEN_TTL: '6' } });
  const secrets = new Set();
  const keep = (s) => { for (const k of ['access_token', 'refresh_token', 'id_token']) if (s?.[k]) secrets.add(s[k]); };
  const logs = [];
  const env = { LATCHKEY_LOG: 'trace' };
  try {
    await withApp({ issuer: p.issuer, env, name: 'logscan-1' }, async (app) => {
      await signIn(app);
      keep(await readSession(p.issuer));
      const first = (await readSession(p.issuer)).refresh_token;
      await waitFor('a silent refresh with rotation', async () =>
        (await readSession(p.issuer))?.refresh_token !== first, { timeoutMs: 20000 });
      keep(await readSession(p.issuer));
      await app.click('#sign-out');
      await app.waitPhase('signedOut');
      await signIn(app);
      keep(await readSession(p.issuer));
      logs.push(app.logTail(1e6));
    });
    for (const r of await p.get('/__dev/token_requests')) {
      for (const k of ['code', 'code_verifier']) if (r[k]) secrets.add(r[k]);
    }
    // The provider forgets its grants: the next refresh gets invalid_grant and signs out.
    const expiresAt = Date.parse((await readSession(p.issuer)).expires_at);
    await sleep(Math.max(0, expiresAt - Date.now() + 500));
    p = await p.restart();
    await withApp({ issuer: p.issuer, env, name: 'logscan-2' }, async (app) => {
      await app.waitPhase('signedOut', { timeoutMs: 30000 });
      await app.waitBanner('session_expired');
      await signIn(app);
      keep(await readSession(p.issuer));
      // A locked keychain: the next refresh cannot save, and says so.
      await lockKeyring();
      await waitFor('the refresh to fail on the locked keychain', () => app.notice(), { timeoutMs: 20000 });
      logs.push(app.logTail(1e6));
    });
    for (const r of await p.get('/__dev/token_requests')) {
      for (const k of ['code', 'code_verifier']) if (r[k]) secrets.add(r[k]);
    }
  } finally {
    await p.stop();
    // Later cases expect the keychain as they found it: unlocked, and without this session
    // (which the locked keychain kept the app from updating).
    await unlockKeyring();
    await clearKeychain();
  }
  const text = logs.join('\n');
  assert.ok(secrets.size >= 10, `secrets collected: ${secrets.size}`);
  assert.match(text, /TRACE|DEBUG/, 'the logs are at the verbose level');
  assert.match(text, /refresh/i, 'the logs cover the refresh');
  for (const s of secrets) assert.ok(!text.includes(s), `a secret (${s.slice(0, 4)}…) is in the app's log`);
});
