// The measuring half of tests/bench/app.sh (runs inside tests/window/session.sh: private D-Bus,
// unlocked keyring, Xvfb). Prints one table.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const APP = process.env.BENCH_APP;
const HELLO = process.env.BENCH_HELLO;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 8000);
process.env.LATCHKEY_APP = APP; // the harness delivers redirects to this binary
const H = await import('../window/lib/harness.mjs');

const CLK_TCK = 100; // Linux USER_HZ

/**
 * Wall-clock start of a process (ms): its start in clock ticks since boot (/proc/<pid>/stat field
 * 22), plus the boot time from /proc/uptime (10 ms resolution; /proc/stat's btime is whole
 * seconds, too coarse).
 */
function startedAt(pid) {
  const boot = Date.now() - Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return boot + (Number(fields[19]) / CLK_TCK) * 1000;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const mb = (kb) => kb / 1024;

async function coldStart(application, issuer, expectPhase) {
  const times = [];
  for (let i = 0; i <= RUNS; i++) { // run 0 warms the page cache and is not counted
    const app = await H.App.launch({ issuer, application });
    try {
      const shownAt = Number(await H.waitFor('first paint', () => app.exec('return document.body.dataset.shownAt')));
      if (expectPhase) {
        const phase = await app.phase();
        if (phase !== expectPhase) throw new Error(`expected ${expectPhase}, got ${phase}`);
      }
      const [pid] = H.processesOf(application);
      if (i > 0) times.push(shownAt - startedAt(pid));
    } finally {
      await app.close();
    }
  }
  return times;
}

function children(pid) {
  const out = [];
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(p), ...children(Number(p)));
    } catch { /* gone */ }
  }
  return out;
}

function pss(pid) {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  return { comm, kb: Number(rollup.match(/^Pss:\s+(\d+) kB/m)[1]) };
}

/** Starts the binary directly (no WebDriver), lets it settle, sums PSS over it and its children. */
async function idleMemory(application, env) {
  const child = spawn(application, [], { env: { ...process.env, ...env }, stdio: 'ignore' });
  try {
    await sleep(IDLE_MS);
    const procs = [child.pid, ...children(child.pid)].map((p) => { try { return pss(p); } catch { return null; } })
      .filter(Boolean);
    return { total: procs.reduce((a, p) => a + p.kb, 0), procs };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    await H.stopStrayApps(application);
    await sleep(1500); // WebKit children linger briefly
  }
}

const provider = await H.Provider.start({ name: 'bench' });
try {
  H.setBrowser({});
  // A stored session, signed in once through the browser, as a user would have.
  {
    const app = await H.App.launch({ issuer: provider.issuer });
    try {
      await app.waitPhase('signedOut');
      await app.click('#sign-in');
      await app.waitPhase('signedIn', { timeoutMs: 30000 });
    } finally {
      await app.close();
    }
  }
  const before = H.launches().length;

  const appStart = await coldStart(APP, provider.issuer, 'signedIn');
  const helloStart = await coldStart(HELLO, provider.issuer, null);
  if (H.launches().length !== before) throw new Error('a browser was launched during the silent sign-ins');

  const appEnv = H.appEnv(provider.issuer);
  const mem = [];
  for (const [label, bin, env] of [
    ['latchkey-app (WebKit defaults)', APP, { ...appEnv, LATCHKEY_WEBVIEW_TUNING: '0' }],
    ['latchkey-app (tuned)', APP, appEnv],
    ['hello-world', HELLO, appEnv],
    // The floor: the hello-world with the same WebKit settings (compositing off via its env var).
    ['hello-world (app settings)', HELLO, { ...appEnv, WEBKIT_DISABLE_COMPOSITING_MODE: '1',
      WEBKIT_DISABLE_DMABUF_RENDERER: '1', JSC_useJIT: 'false' }],
  ]) {
    const m = await idleMemory(bin, env);
    mem.push({ label, ...m });
  }

  // Three accounts signed in (issue 12): two more added in the window, then the same idle
  // measurement; the shown one plus two refreshing in the background.
  {
    const app = await H.App.launch({ issuer: provider.issuer });
    try {
      await app.waitPhase('signedIn', { timeoutMs: 30000 });
      for (const user of ['bob', 'alice']) {
        H.setBrowser({ DRIVER_USER: user });
        const count = await app.exec("return document.querySelectorAll('#account-list button').length");
        await app.click('#add-account');
        await H.waitFor('one more account', async () =>
          (await app.exec("return document.querySelectorAll('#account-list button').length")) === count + 1, { timeoutMs: 30000 });
      }
    } finally {
      H.setBrowser({});
      await app.close();
    }
  }
  const three = await idleMemory(APP, appEnv);
  mem.push({ label: 'latchkey-app (tuned), three accounts', ...three });

  const size = (p) => fs.statSync(p).size / (1024 * 1024);
  const appMs = median(appStart);
  const helloMs = median(helloStart);
  const tuned = mem[1].total;
  const deb = size(process.env.BENCH_APP_DEB);
  const ok = (b) => (b ? 'ok' : 'OVER');
  const row = (a, b, c, d = '') => console.log(`${a.padEnd(44)}${String(b).padStart(14)}${String(c).padStart(14)}   ${d}`);

  console.log('');
  row('', 'latchkey-app', 'hello-world', 'target');
  row(`cold start to first paint, median of ${RUNS} (ms)`, appMs.toFixed(0), helloMs.toFixed(0),
    `<= hello + 200: ${ok(appMs <= helloMs + 200)} (+${(appMs - helloMs).toFixed(0)} ms)`);
  row('  all runs (ms)', appStart.map((t) => t.toFixed(0)).join(' '), '', '');
  row('', helloStart.map((t) => t.toFixed(0)).join(' '), '', '(hello-world)');
  row('idle memory, PSS sum (MB), WebKit defaults', mb(mem[0].total).toFixed(1), mb(mem[2].total).toFixed(1), '');
  row('idle memory, PSS sum (MB), app settings', mb(tuned).toFixed(1), mb(mem[3].total).toFixed(1), `<= 200 MB: ${ok(mb(tuned) <= 200)}`);
  row('  the same, three accounts signed in (MB)', mb(three.total).toFixed(1), '',
    `<= one account + 5 MB: ${ok(mb(three.total) <= mb(tuned) + 5)} (${(mb(three.total) - mb(tuned)) >= 0 ? '+' : ''}${(mb(three.total) - mb(tuned)).toFixed(1)} MB)`);
  for (const m of mem) {
    console.log(`  ${m.label}: ${m.procs.map((p) => `${p.comm} ${mb(p.kb).toFixed(1)}`).join(', ')}`);
  }
  row('release binary (MiB)', size(APP).toFixed(1), size(HELLO).toFixed(1), '');
  row('.deb (MiB)', deb.toFixed(2), size(process.env.BENCH_HELLO_DEB).toFixed(2), `<= 8 MB: ${ok(deb <= 8)}`);
} finally {
  await provider.stop();
}
