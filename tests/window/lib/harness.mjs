// The window suite's world: the dev provider, the app under tauri-driver, the keychain, the
// browser driver's log. Expects the environment session.sh sets up (private D-Bus session with an
// unlocked keyring, Xvfb, isolated HOME).

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { launchProvider, stopProvider } from '../../provider/launch.mjs';
import { Session } from './webdriver.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const APP = path.resolve(process.env.LATCHKEY_APP
  ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target'), 'debug/latchkey-app'));
/** The `latchkey` CLI, for the session shared with the window. */
export const CLI = path.resolve(process.env.LATCHKEY_CLI
  ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target'), 'debug/latchkey'));
export const ARTIFACTS = process.env.LATCHKEY_E2E_ARTIFACTS ?? path.join(ROOT, 'target/e2e-artifacts');
export const WORK = process.env.LATCHKEY_E2E_WORK ?? fs.mkdtempSync('/tmp/latchkey-window-');
export const DRIVER_LOG = path.join(WORK, 'driver.log');
const BROWSER_ENV = path.join(WORK, 'browser.env');
const LOGS = path.join(WORK, 'logs');
fs.mkdirSync(LOGS, { recursive: true });
fs.mkdirSync(ARTIFACTS, { recursive: true });

export const SCHEME = 'com.example.latchkey';
export const CLIENT_ID = 'latchkey-desktop';
export const SCOPES = 'openid profile email offline_access api:read';
// tauri-driver's ports; override to run two suites on one machine at once.
const WD_PORT = Number(process.env.LATCHKEY_E2E_WD_PORT ?? 4444);
const WD_NATIVE_PORT = Number(process.env.LATCHKEY_E2E_WD_NATIVE_PORT ?? WD_PORT + 1);
const TAURI_DRIVER = process.env.TAURI_DRIVER ?? 'tauri-driver';
const NATIVE_DRIVER = process.env.NATIVE_DRIVER ?? '/usr/bin/WebKitWebDriver';

export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- provider

export class Provider {
  static async start({ port = 0, env = {}, name = 'provider' } = {}) {
    const { child, issuer, port: bound } = await launchProvider({ port, env, logFile: path.join(LOGS, `${name}.log`) });
    const p = new Provider();
    p.proc = child;
    p.issuer = issuer;
    p.port = bound;
    p.name = name;
    p.env = env;
    return p;
  }

  async get(route) {
    const res = await fetch(this.issuer + route);
    return res.json();
  }

  async post(route, body = {}) {
    const res = await fetch(this.issuer + route, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    return res.json();
  }

  stats() { return this.get('/__dev/stats'); }
  introspect(token) { return this.post('/__dev/introspect', { token }); }

  async stop() {
    await stopProvider({ child: this.proc });
  }

  /** The same issuer again (new process, empty state: grants and tokens are gone). */
  async restart() {
    await this.stop();
    return Provider.start({ port: this.port, env: this.env, name: this.name });
  }
}

/** An issuer nothing listens on. */
export async function deadIssuer() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------- browser driver

/** Settings for the next launches of the login driver (see browser.sh). */
export function setBrowser(vars = {}) {
  const q = (v) => `'${String(v).replaceAll("'", "'\\''")}'`;
  fs.writeFileSync(BROWSER_ENV, Object.entries(vars).map(([k, v]) => `export ${k}=${q(v)}\n`).join(''));
}

export function driverEvents() {
  if (!fs.existsSync(DRIVER_LOG)) return [];
  return fs.readFileSync(DRIVER_LOG, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export const launches = () => driverEvents().filter((e) => e.event === 'launch');

// ---------------------------------------------------------------- keychain

function run(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

export const sessionName = (issuer) => `default/${CLIENT_ID}@${issuer}`;

/** Locks the login collection, as a screen lock would. Pair it with unlockKeyring. */
export async function lockKeyring() {
  const r = await run('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.secrets',
    '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock',
    'array:objpath:/org/freedesktop/secrets/collection/login']);
  if (r.code !== 0 || !r.stdout.includes('collection/login')) throw new Error(`lock: ${r.stdout}${r.stderr}`);
}

/**
 * Unlocks it again, so later cases (and suites: node runs the files in its own order) find the
 * keychain as session.sh left it. Unlocking through the Secret Service would need a prompter on
 * a display; a replacement daemon unlocked with session.sh's password needs none.
 */
export async function unlockKeyring() {
  const env = { ...process.env };
  delete env.DISPLAY;
  await new Promise((resolve, reject) => {
    const child = spawn('gnome-keyring-daemon', ['--replace', '--unlock', '--components=secrets'],
      { env, stdio: ['pipe', 'ignore', 'ignore'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gnome-keyring-daemon exited ${code}`))));
    child.stdin.end('latchkey-e2e');
  });
  await waitFor('the keychain to be unlocked again', async () => {
    const r = await run('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.secrets',
      '/org/freedesktop/secrets/collection/login', 'org.freedesktop.DBus.Properties.Get',
      'string:org.freedesktop.Secret.Collection', 'string:Locked']);
    return r.code === 0 && /boolean false/.test(r.stdout);
  });
}

/** The stored session (`LK1 <gen> <n>\n<json>`, chunked across entries when long). */
export async function readSession(issuer) {
  const name = sessionName(issuer);
  const lookup = async (n) => {
    const r = await run('secret-tool', ['lookup', 'service', 'latchkey', 'username', n]);
    return r.code === 0 ? r.stdout : null;
  };
  const primary = await lookup(name);
  if (primary === null) return null;
  const nl = primary.indexOf('\n');
  const [magic, gen, count] = primary.slice(0, nl).split(' ');
  if (magic !== 'LK1') throw new Error(`unexpected keychain entry header ${primary.slice(0, 20)}`);
  let body = primary.slice(nl + 1);
  for (let i = 1; i < Number(count); i++) body += await lookup(`${name}#${gen}.${i}`);
  return JSON.parse(body);
}

/** Removes everything stored under the keychain service `latchkey`. */
export async function clearKeychain() {
  await run('secret-tool', ['clear', 'service', 'latchkey']);
}

/** Everything stored under the keychain service `latchkey`. */
export async function keychainItems() {
  const r = await run('secret-tool', ['search', '--all', 'service', 'latchkey']);
  return (r.stdout + r.stderr).split('\n').filter((l) => l.startsWith('['));
}

// ---------------------------------------------------------------- the app

export function appEnv(issuer, extra = {}) {
  const env = {
    ...process.env,
    LATCHKEY_ISSUER: issuer,
    LATCHKEY_CLIENT_ID: CLIENT_ID,
    LATCHKEY_SCOPES: SCOPES,
    BROWSER: `sh ${path.join(ROOT, 'tests/window/browser.sh')}`,
    LATCHKEY_E2E_BROWSER_ENV: BROWSER_ENV,
    DRIVER_DELIVER: APP,
    DRIVER_LOG,
    DRIVER_SCREENSHOT_DIR: ARTIFACTS,
    // Debug: a failing case prints the app's log tail, which should say where it stopped.
    LATCHKEY_LOG: 'debug',
    // Keep GTK from starting desktop portals on the test bus.
    GTK_USE_PORTAL: '0',
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === null || v === undefined) delete env[k]; else env[k] = v;
  }
  return env;
}

/** Processes of `binary` on this test's D-Bus session: they would swallow the next launch. */
export function processesOf(binary = APP) {
  const bus = process.env.DBUS_SESSION_BUS_ADDRESS;
  const real = fs.realpathSync(binary);
  const pids = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const exe = fs.readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
      if (exe !== real) continue;
      const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (environ.includes(`DBUS_SESSION_BUS_ADDRESS=${bus}`)) pids.push(Number(pid));
    } catch { /* gone, or not ours */ }
  }
  return pids;
}

export async function stopStrayApps(binary = APP) {
  const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  let pids = processesOf(binary);
  if (!pids.length) return;
  for (const pid of pids) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
  await waitFor('stray app instances to exit', () => pids.every((p) => !alive(p)), { timeoutMs: 5000 })
    .catch(() => pids.forEach((p) => { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }));
  pids = processesOf(binary);
  if (pids.length) await sleep(300);
}

async function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

let seq = 0;

/** WebDriver key codes. */
export const KEY = { TAB: '\uE004', ENTER: '\uE007', SPACE: ' ', ESCAPE: '\uE00C' };

let axeSource;
const AXE_SOURCE = () => (axeSource ??= fs.readFileSync(path.join(ROOT, 'tests/node_modules/axe-core/axe.min.js'), 'utf8'));

export class App {
  /**
   * Starts the app through tauri-driver (a fresh driver per launch, so each launch has its own
   * environment) and waits until the page is ready (body[data-ready]: it follows the state).
   */
  static async launch({ issuer, env = {}, args = [], name, application = APP } = {}) {
    await stopStrayApps(application);
    // Someone else's driver on these ports would take our session requests.
    if ((await portOpen(WD_PORT)) || (await portOpen(WD_NATIVE_PORT))) {
      throw new Error(`port ${WD_PORT} or ${WD_NATIVE_PORT} is in use (another suite? set LATCHKEY_E2E_WD_PORT)`);
    }
    const label = name ?? `app-${++seq}`;
    const logPath = path.join(LOGS, `${label}.log`);
    const log = fs.openSync(logPath, 'a');
    const driver = spawn(TAURI_DRIVER, ['--port', String(WD_PORT), '--native-port', String(WD_NATIVE_PORT),
      '--native-driver', NATIVE_DRIVER], { env: appEnv(issuer, env), stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const app = new App();
    app.application = application;
    app.driver = driver;
    app.issuer = issuer;
    app.env = appEnv(issuer, env);
    app.logPath = logPath;
    try {
      // tauri-driver listens before its WebKitWebDriver does: wait for both.
      await waitFor('tauri-driver and WebKitWebDriver to listen',
        async () => (await portOpen(WD_PORT)) && (await portOpen(WD_NATIVE_PORT)), { timeoutMs: 10000, intervalMs: 50 });
      app.session = await Session.create(`http://127.0.0.1:${WD_PORT}`, {
        alwaysMatch: { 'tauri:options': { application, args } },
      });
      await waitFor('the page to be ready', () => app.session.exec('return document.body.dataset.ready === "true"'));
    } catch (e) {
      await app.close();
      throw new Error(`${e.message}\n--- ${logPath} ---\n${app.logTail()}`);
    }
    return app;
  }

  logTail(lines = 40) {
    try { return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return ''; }
  }

  exec(script, ...args) { return this.session.exec(script, ...args); }
  phase() { return this.exec('return document.body.dataset.phase'); }

  async waitPhase(phase, opts) {
    // Report the phase last seen, not just "false", so a timeout says where the app got stuck.
    let seen;
    await waitFor(`phase ${phase}`, async () => (seen = await this.phase()) === phase, opts).catch((e) => {
      throw new Error(`${e.message}; the page's phase was ${JSON.stringify(seen)}`);
    });
  }

  /**
   * Waits until the window shows `profile` signed in. Use it, not `waitPhase('signedIn')`, after
   * an action taken while signed in (adding an account): that phase still holds from the account
   * already shown, so it would be "reached" before the new sign-in even starts.
   */
  async waitSignedIn(profile, opts) {
    let seen;
    const shown = async () => {
      seen = { phase: await this.phase(), profile: await this.visibleText('#id-profile') };
      return seen.phase === 'signedIn' && seen.profile === profile;
    };
    await waitFor(`${profile} signed in`, shown, opts).catch((e) => {
      throw new Error(`${e.message}; the page showed ${JSON.stringify(seen)}`);
    });
  }

  /** Visible text of an element, or null when it is hidden or absent. */
  visibleText(css) {
    return this.exec(`const el = document.querySelector(arguments[0]);
      if (!el || el.closest('[hidden]')) return null; return el.textContent.trim();`, css);
  }

  click(css) { return this.session.click(css); }
  type(css, value) { return this.session.type(css, value); }

  async banner() {
    return this.exec(`const b = document.getElementById('banner'); if (b.hidden) return null;
      return { kind: b.dataset.kind, title: document.getElementById('banner-title').textContent,
               message: document.getElementById('banner-message').textContent };`);
  }

  async waitBanner(kind, opts) {
    return waitFor(`banner ${kind}`, async () => {
      const b = await this.banner();
      return b && b.kind === kind ? b : null;
    }, opts);
  }

  notice() {
    return this.exec(`const n = document.getElementById('notice'); if (n.hidden) return null;
      return { kind: n.dataset.kind, message: document.getElementById('notice-message').textContent };`);
  }

  html() { return this.exec('return document.documentElement.outerHTML'); }

  /** Keyboard only: presses Tab until `css` has the focus (at most `max` times), then `key`. */
  async tabTo(css, key = KEY.ENTER, { max = 40 } = {}) {
    for (let i = 0; i < max; i++) {
      if (await this.exec('return document.activeElement && document.activeElement.matches(arguments[0])', css)) {
        if (key) await this.session.keys(key);
        return;
      }
      await this.session.keys(KEY.TAB);
    }
    throw new Error(`Tab never reached ${css} (focus is on ${await this.exec('return document.activeElement && document.activeElement.outerHTML.slice(0, 120)')})`);
  }

  press(...keys) { return this.session.keys(...keys); }

  /**
   * axe-core (WCAG 2.0/2.1 A and AA rules) in the page as it is now: the violations, each as
   * `rule: targets`. Injected through WebDriver, so the app's CSP is not loosened for it.
   */
  async axe() {
    if (!(await this.exec('return typeof window.axe === "object"'))) {
      // The script body itself, not eval in the page (which the CSP forbids).
      await this.exec(`${AXE_SOURCE()}\nreturn typeof window.axe;`);
    }
    const result = await this.session.execAsync(`const done = arguments[arguments.length - 1];
      axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
        .then((r) => done(r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '))),
              (e) => done(['axe failed: ' + e]));`);
    return result;
  }

  /** Calls a command over IPC the way the page does; returns the raw JSON of the result. */
  invoke(command, args = {}) {
    return this.session.execAsync(`const done = arguments[arguments.length - 1];
      window.__TAURI__.core.invoke('plugin:latchkey|' + arguments[0], arguments[1])
        .then((v) => done({ ok: true, json: JSON.stringify(v) }), (e) => done({ ok: false, json: JSON.stringify(e) }));`,
    command, args);
  }

  /**
   * Saves a screenshot of the window (an artifact, never a failure): the X display cropped to
   * the window. WebKitWebDriver's own screenshot command waits for a composited frame, which a
   * webview without GPU compositing (the app's setting) sometimes never produces.
   */
  async screenshot(name) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    await sleep(250); // let the view's fade-in finish
    const rect = await this.session.cmd('GET', '/window/rect').catch(() => null);
    const crop = rect ? ['-crop', `${rect.width}x${rect.height}+${Math.max(0, rect.x)}+${Math.max(0, rect.y)}`] : [];
    const r = await run('import', ['-window', 'root', ...crop, '+repage', file]);
    if (r.code !== 0) console.error(`# screenshot ${name} failed: ${r.stderr.trim()}`);
  }

  /** Starts the app binary with `url` as its argument, as the OS delivers a redirect. */
  async deliver(url) {
    const child = spawn(APP, [url], { env: this.env, stdio: 'ignore' });
    const [code] = await once(child, 'exit');
    return code;
  }

  async close() {
    if (this.session) await this.session.delete();
    if (this.driver && this.driver.exitCode === null && this.driver.signalCode === null) {
      this.driver.kill('SIGTERM');
      await once(this.driver, 'exit');
    }
    // The next launch needs both ports free (WebKitWebDriver exits after tauri-driver).
    await waitFor('the WebDriver ports to close',
      async () => !(await portOpen(WD_PORT)) && !(await portOpen(WD_NATIVE_PORT)), { timeoutMs: 10000, intervalMs: 50 })
      .catch(() => {});
    await stopStrayApps(this.application);
  }
}
