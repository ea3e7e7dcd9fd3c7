// A throwaway TLS certificate for the test servers (kube-apiserver.mjs, git-server.mjs).
//
// The certificate is self-signed and is its own CA: tests hand cert.pem to the client as
// the trust anchor (kubectl's `certificate-authority`, git's `http.sslCAInfo`), so nothing
// in the system trust store is touched. `openssl req -x509` marks it CA:TRUE (the default
// v3_ca section), which Go's and GnuTLS's verifiers want of a trust anchor; the SAN covers
// 127.0.0.1, the address the servers listen on, because neither client falls back to the CN.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A key generation takes milliseconds; this only bounds a wedged openssl on a loaded box. */
const OPENSSL_TIMEOUT_MS = 30_000;

/**
 * Writes `cert.pem` and `key.pem` into `dir` (created if missing), replacing older ones.
 * @param {string} dir
 * @returns {{ cert: string, key: string, certFile: string, keyFile: string }}
 */
export function makeCert(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  try {
    execFileSync('openssl', [
      'req', '-x509',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', keyFile, '-out', certFile,
    ], { timeout: OPENSSL_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const why = e.code === 'ENOENT' ? 'openssl is not installed' : (e.stderr?.toString().trim() || e.message);
    throw new Error(`makeCert: openssl req failed: ${why}`);
  }
  return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), certFile, keyFile };
}
