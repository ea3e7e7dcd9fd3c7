// The app as a user installs it: the release .deb installed with dpkg (tests/window/installed.sh),
// /usr/bin/latchkey-app under tauri-driver, and redirects delivered by `xdg-open`, which is how
// Chromium and every other Linux program hand a URL to its scheme's handler. What this adds to
// app.test.mjs: the package's desktop file, the system's MIME database and xdg-open really route
// `com.example.latchkey:` URLs to the running app.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  APP, App, Provider, SCHEME, WORK, driverEvents, launches, processesOf, setBrowser, stopStrayApps, waitFor,
} from './lib/harness.mjs';

const exec = promisify(execFile);
const DEB = process.env.LATCHKEY_DEB;
const RPM = process.env.LATCHKEY_RPM;
const SCHEME_RE = new RegExp(`^MimeType=(.*;)?x-scheme-handler/${SCHEME.replaceAll('.', '\\.')};`, 'm');

let provider;

before(async () => {
  assert.ok(DEB && RPM, 'run through tests/window/installed.sh (LATCHKEY_DEB, LATCHKEY_RPM)');
  assert.equal(APP, '/usr/bin/latchkey-app', 'LATCHKEY_APP must be the installed binary');
  setBrowser({});
  provider = await Provider.start({ name: 'installed' });
});

after(async () => {
  await stopStrayApps();
  await provider?.stop();
});

/** `xdg-open url` as a browser runs it; BROWSER is cleared so a missing handler can't fall back to one. */
function xdgOpen(url, env) {
  return exec('xdg-open', [url], { env: { ...env, BROWSER: '' } }).then(() => 0, (e) => e.code ?? 1);
}

/** The desktop files a package would install, unpacked into a temp dir. */
async function desktopFilesIn(archive) {
  const dir = fs.mkdtempSync(path.join(WORK, 'unpack-'));
  const cmd = archive.endsWith('.deb')
    ? 'dpkg-deb -x "$1" "$2"'
    : 'rpm2cpio "$1" | (cd "$2" && cpio -id --quiet)';
  await exec('sh', ['-c', cmd, 'sh', archive, dir]);
  const apps = path.join(dir, 'usr/share/applications');
  const names = fs.existsSync(apps) ? fs.readdirSync(apps).filter((n) => n.endsWith('.desktop')) : [];
  return names.map((n) => fs.readFileSync(path.join(apps, n), 'utf8'));
}

test('the .deb and the .rpm register the scheme through their desktop file, with %u', async () => {
  for (const archive of [DEB, RPM]) {
    const files = await desktopFilesIn(archive);
    assert.equal(files.length, 1, `${archive}: one desktop file`);
    const [entry] = files;
    assert.match(entry, SCHEME_RE, `${archive}: MimeType`);
    assert.match(entry, /^Exec=latchkey-app %u$/m, `${archive}: Exec passes the URL`);
  }
  // dpkg's trigger put it in the system's MIME cache: it is the handler now.
  const { stdout } = await exec('xdg-mime', ['query', 'default', `x-scheme-handler/${SCHEME}`]);
  assert.equal(stdout.trim(), 'Latchkey.desktop');
});

test('installed app: sign in through the browser, the redirect comes back through xdg-open', async () => {
  const app = await App.launch({ issuer: provider.issuer, env: { DRIVER_DELIVER: 'BROWSER= xdg-open' }, name: 'installed-sign-in' });
  try {
    await app.waitPhase('signedOut');
    const before = launches().length;
    await app.click('#sign-in');
    await app.waitPhase('signedIn', { timeoutMs: 30000 });
    assert.equal(await app.visibleText('#id-name'), 'Alice Example');
    assert.match(await app.visibleText('#id-email'), /^alice@example\.com/);
    await app.screenshot('20-installed-signed-in');

    const mine = launches().slice(before);
    assert.equal(mine.length, 1);
    const done = driverEvents().find((e) => e.event === 'done' && e.pid === mine[0].pid);
    assert.equal(done.result, 'custom-scheme');
    assert.equal(done.deliver_exit, 0, 'xdg-open found the handler and it handed the URL over');
    assert.equal(processesOf().length, 1, 'the second instance exited; one app is running');

    await app.click('#sign-out');
    await app.waitPhase('signedOut');
  } catch (e) {
    await app.screenshot(`failure-installed-${Date.now()}`).catch(() => {});
    throw new Error(`${e.stack ?? e}\n--- app log (tail) ---\n${app.logTail()}`, { cause: e });
  } finally {
    await app.close();
  }
});

test('installed app: a forged link opened with xdg-open reaches the running app and is rejected', async () => {
  const stats0 = await provider.stats();
  const app = await App.launch({ issuer: provider.issuer, name: 'installed-forged' });
  try {
    await app.waitPhase('signedOut');
    assert.equal(await xdgOpen(`${SCHEME}:/callback?code=forged&state=forged`, app.env), 0);
    const b = await app.waitBanner('foreign_callback');
    assert.equal(b.title, 'A sign-in link was ignored');
    assert.equal(await app.phase(), 'signedOut');
    await waitFor('the forwarding instance to exit', () => processesOf().length === 1);
    await app.screenshot('21-installed-forged-link');
  } finally {
    await app.close();
  }
  const stats1 = await provider.stats();
  assert.equal(stats1.token_requests.authorization_code, stats0.token_requests.authorization_code,
    'the provider never saw a token request for the forged link');
});
