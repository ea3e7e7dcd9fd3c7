// A kubeconfig for kube-apiserver.mjs whose one user gets its token from an exec
// credential plugin (client.authentication.k8s.io/v1), i.e. `latchkey` in the tests.
//
// Written by hand: every string is emitted with JSON.stringify, and a JSON string is a
// valid YAML double-quoted scalar, so no YAML library is needed and no value can break out.

const q = (s) => JSON.stringify(String(s));

/**
 * @param {object} o
 * @param {string} o.server e.g. the READY URL of kube-apiserver.mjs
 * @param {string} o.caFile the server's cert.pem (it is its own CA)
 * @param {string} o.command the plugin executable
 * @param {string[]} [o.args]
 * @param {Array<{name: string, value: string}>|Record<string, string>} [o.env] extra plugin environment
 * @param {'Never'|'IfAvailable'|'Always'} [o.interactiveMode] required by v1; default IfAvailable
 * @returns {string} kubeconfig YAML
 */
export function kubeconfig({ server, caFile, command, args = [], env = [], interactiveMode = 'IfAvailable' }) {
  if (!server || !caFile || !command) throw new Error('kubeconfig: server, caFile and command are required');
  const envList = Array.isArray(env) ? env : Object.entries(env).map(([name, value]) => ({ name, value }));
  const lines = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: latchkey-test',
    '  cluster:',
    `    server: ${q(server)}`,
    `    certificate-authority: ${q(caFile)}`,
    'users:',
    '- name: latchkey',
    '  user:',
    '    exec:',
    '      apiVersion: client.authentication.k8s.io/v1',
    `      command: ${q(command)}`,
    ...(args.length ? ['      args:', ...args.map((a) => `      - ${q(a)}`)] : ['      args: []']),
    ...(envList.length
      ? ['      env:', ...envList.flatMap(({ name, value }) => [`      - name: ${q(name)}`, `        value: ${q(value)}`])]
      : ['      env: []']),
    `      interactiveMode: ${q(interactiveMode)}`,
    '      provideClusterInfo: false',
    'contexts:',
    '- name: latchkey-test',
    '  context:',
    '    cluster: latchkey-test',
    '    user: latchkey',
    'current-context: latchkey-test',
  ];
  return `${lines.join('\n')}\n`;
}
