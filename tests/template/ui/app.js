// Acme Sign-In's window: renders the plugin's view model (which never holds a token) with
// textContent only, and calls the plugin's API.
import * as latchkey from './latchkey.js';

const $ = (id) => document.getElementById(id);
const put = (id, text) => { const el = $(id); el.textContent = text ?? ''; el.hidden = !text; };

function render(view) {
  document.body.dataset.phase = view.phase;
  put('error', view.error && `${view.error.title}: ${view.error.message}`);
  put('notice', view.notice && view.notice.message);
  $('issuer').textContent = view.provider ? view.provider.issuer : '';
  const id = view.identity;
  $('name').textContent = id ? (id.name ?? id.subject) : '';
  $('subject').textContent = id ? id.subject : '';
  $('granted').textContent = id ? id.granted.map((g) => g.scope).join(' ') : '';
  document.body.dataset.ready = 'true';
}

async function run(action) {
  try {
    render(await action());
  } catch (e) {
    put('error', e && e.message ? e.message : String(e));
  }
}

$('sign-in').addEventListener('click', () => run(latchkey.signIn));
$('cancel').addEventListener('click', () => run(latchkey.cancel));
$('sign-out').addEventListener('click', () => run(() => latchkey.signOut()));
latchkey.watch(render);
