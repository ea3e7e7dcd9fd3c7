// Starts one of the test servers in this directory (kube-apiserver.mjs, git-server.mjs) as a
// child process and waits for its READY line, like ../provider/launch.mjs does for the
// provider: a server that does not come up is killed and reported, never left running,
// because a leftover child keeps `node --test` from exiting.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const START_TIMEOUT_MS = 30_000;

/**
 * @param {string} script a file name in tests/tools (e.g. 'git-server.mjs') or a path
 * @param {string[]} args the server's arguments except --dir
 * @param {object} o
 * @param {string} o.dir passed as --dir; the child's stderr goes to <dir>/stderr.log
 * @param {object} [o.env] added to this process's environment
 * @param {number} [o.timeoutMs] how long to wait for READY before killing it
 * @returns {Promise<{ child, url: string, port: number, logFile: string }>}
 */
export async function launchTool(script, args, { dir, env = {}, timeoutMs = START_TIMEOUT_MS } = {}) {
  if (!dir) throw new Error('launchTool: dir is required');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.isAbsolute(script) ? script : path.join(HERE, script);
  const name = path.basename(file, '.mjs');
  const logFile = path.join(dir, 'stderr.log');
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [file, ...args, '--dir', dir], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', log],
  });
  fs.closeSync(log);
  const stderrText = () => {
    try { return fs.readFileSync(logFile, 'utf8').slice(-4000); } catch { return ''; }
  };

  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        reject(new Error(`${name} printed no READY line in ${timeoutMs / 1000} s; its stderr:\n${stderrText()}`));
      }, timeoutMs);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^READY (https?:\/\/127\.0\.0\.1:\d+)$/m);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before READY; its stderr:\n${stderrText()}`));
      });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    return { child, url, port: Number(new URL(url).port), logFile };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** Stops a server started by launchTool; resolves with its exit code or signal. */
export function stopTool(t) {
  return new Promise((resolve) => {
    if (t.child.exitCode !== null || t.child.signalCode !== null) {
      resolve(t.child.exitCode ?? t.child.signalCode);
      return;
    }
    t.child.once('exit', (code, sig) => resolve(code ?? sig));
    t.child.kill('SIGTERM');
  });
}
