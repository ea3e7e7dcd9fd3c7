// Starts the dev provider (server.mjs) as a child process and waits for its READY line.
// Shared by the provider self-test and the window suite, so both fail the same way: a
// provider that does not come up is killed and reported, never left running. A child that
// outlives its test keeps node's event loop alive, and `node --test` then never exits.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.mjs');

/** Generous: a start takes about a second, but CI machines have been seen far slower. */
const START_TIMEOUT_MS = 60_000;

/**
 * @param {object} o
 * @param {number} [o.port] 0 for an ephemeral port
 * @param {object} [o.env] added to this process's environment (DEV_QUIET=1 is the default)
 * @param {string} [o.logFile] where the provider's stderr goes; kept in memory when absent
 * @param {number} [o.timeoutMs] how long to wait for READY before killing it
 * @returns {Promise<{ child, issuer: string, port: number }>}
 */
export async function launchProvider({ port = 0, env = {}, logFile, timeoutMs = START_TIMEOUT_MS } = {}) {
  const log = logFile ? fs.openSync(logFile, 'a') : 'pipe';
  const child = spawn(process.execPath, [SERVER, '--port', String(port)], {
    env: { ...process.env, DEV_QUIET: '1', ...env },
    stdio: ['ignore', 'pipe', log],
  });
  if (logFile) fs.closeSync(log);
  let stderr = '';
  child.stderr?.on('data', (d) => { stderr += d; });
  const stderrText = () => (logFile ? readTail(logFile) : stderr);
  const t0 = Date.now();

  try {
    const issuer = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        reject(new Error(`the dev provider printed no READY line in ${timeoutMs / 1000} s `
          + `(${diagnose(child.pid)}); its stderr:\n${stderrText()}`));
      }, timeoutMs);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^READY (http:\/\/127\.0\.0\.1:\d+)$/m);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the dev provider exited (${code ?? signal}) before READY; its stderr:\n${stderrText()}`));
      });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const ms = Date.now() - t0;
    if (ms > 10_000) process.stderr.write(`note: the dev provider took ${ms} ms to start (${diagnose(child.pid)})\n`);
    return { child, issuer, port: Number(new URL(issuer).port) };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** Stops a provider started by launchProvider; resolves with its exit code or signal. */
export function stopProvider(p) {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      resolve(p.child.exitCode ?? p.child.signalCode);
      return;
    }
    p.child.once('exit', (code, sig) => resolve(code ?? sig));
    p.child.kill('SIGTERM');
  });
}

// What a slow start looked like: was the child busy (CPU time) or waiting, and was the machine loaded.
function diagnose(pid) {
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 3 (state), 14 and 15 (utime, stime) of proc(5), counted after the command name.
    const cpu = (Number(f[11]) + Number(f[12])) / 100;
    return `pid ${pid} state ${f[0]}, ${cpu.toFixed(1)} s CPU; load average ${load}`;
  } catch {
    return `pid ${pid}; load average ${load}`;
  }
}

function readTail(file) {
  try {
    return fs.readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '';
  }
}
