// Latchkey window: renders the view model Rust sends. No state of its own beyond the last view,
// no tokens (none are ever sent), no remote content. Text goes in with textContent only.
// The Latchkey plugin's API (a copy of crates/tauri-plugin-latchkey/guest-js/index.js, kept
// identical by a test: no bundler here).
import * as latchkey from './latchkey.js';

const $ = (id) => document.getElementById(id);
const PHASES = ['starting', 'setup', 'signedOut', 'waiting', 'signedIn'];

let view = null;
let lastSeq = -1;

// ---------------------------------------------------------------- rendering

function apply(vm) {
  if (!vm || typeof vm.seq !== 'number' || vm.seq < lastSeq) return; // answers may cross
  const previous = view;
  lastSeq = vm.seq;
  view = vm;
  render(vm, previous);
}

function show(el, visible) { el.hidden = !visible; }
function text(id, value) { $(id).textContent = value ?? ''; }

function render(vm, previous) {
  document.body.dataset.phase = vm.phase;
  for (const p of PHASES) show($(`view-${p}`), p === vm.phase);
  $('main').setAttribute('aria-busy', vm.phase === 'starting' ? 'true' : 'false');

  text('provider-line', vm.provider ? vm.provider.name : '');
  renderBanner(vm.error);
  renderNotice(vm.notice);

  renderAccounts(vm);
  if (vm.phase === 'setup') renderSetup(vm.setup, previous);
  if (vm.phase === 'signedOut') renderSignedOut(vm);
  if (vm.phase === 'waiting') renderWaiting(vm);
  if (vm.phase === 'signedIn') renderSignedIn(vm.identity);

  if (!previous || previous.phase !== vm.phase) announce(vm);
  // A new notice (the retry notice among them) is announced too, after the phase.
  const said = (n) => (n ? `${n.kind}:${n.message}` : '');
  if (vm.notice && said(vm.notice) !== said(previous && previous.notice)) {
    const phaseChanged = !previous || previous.phase !== vm.phase;
    text('live', `${phaseChanged ? `${$('live').textContent} ` : ''}${vm.notice.message}`);
  }
  // When the first real state was painted (wall clock, ms): read by tests/bench/app.sh.
  if (vm.phase !== 'starting' && !document.body.dataset.shownAt) {
    requestAnimationFrame(() => { document.body.dataset.shownAt = String(Date.now()); });
  }
}

function announce(vm) {
  const who = vm.identity && (vm.identity.name || vm.identity.email || vm.identity.subject);
  const messages = {
    starting: 'Checking your session…',
    setup: 'Latchkey needs to be set up.',
    signedOut: 'You are signed out.',
    waiting: 'Continue signing in in your browser.',
    signedIn: `Signed in as ${who}.`,
  };
  text('live', messages[vm.phase]);
  // Move keyboard focus to the new state's heading, unless the user is typing in a field.
  const active = document.activeElement;
  const typing = active && (active.tagName === 'INPUT') && !active.readOnly;
  if (!typing && vm.phase !== 'starting') {
    const heading = $(`view-${vm.phase}`).querySelector('h1');
    if (heading && document.body.dataset.ready) heading.focus({ preventScroll: true });
  }
}

function renderBanner(error) {
  show($('banner'), !!error);
  if (!error) return;
  $('banner').dataset.kind = error.kind;
  text('banner-title', error.title);
  text('banner-message', error.message);
  show($('banner-description'), !!error.description);
  text('banner-description', error.description ? `The provider says: “${error.description}”` : '');
  show($('banner-retry'), !!error.retry);
  $('banner-retry').dataset.action = error.retry || '';
  const again = ['session_expired', 'not_signed_in', 'foreign_callback', 'timed_out'].includes(error.kind);
  $('banner-retry').textContent = error.retry === 'signIn' && again ? 'Sign in again' : 'Try again';
}

function renderNotice(notice) {
  show($('notice'), !!notice);
  if (!notice) return;
  $('notice').dataset.kind = notice.kind;
  text('notice-message', notice.message);
  show($('notice-detail'), !!notice.detail);
  text('notice-detail', notice.detail);
  const retrying = notice.kind === 'refreshRetry';
  show($('notice-retry-at'), retrying && !!notice.retryAt);
  text('notice-retry-at', retrying && notice.retryAt ? `Next attempt at ${notice.retryAt.text}.` : '');
  show($('notice-retry'), retrying);
  show($('notice-dismiss'), !retrying);
}

/** The account switcher: every signed-in account, one click (or Enter) to show it. */
function renderAccounts(vm) {
  const accounts = vm.accounts || [];
  const configured = vm.phase === 'signedIn' || vm.phase === 'signedOut';
  show($('accounts'), configured || accounts.length > 0);
  show($('sign-out-all'), accounts.filter((a) => a.signedIn).length > 1);
  show($('add-account'), configured);
  show($('add-account-other'), configured);
  const list = $('account-list');
  const key = JSON.stringify(accounts);
  if (list.dataset.key === key) return; // unchanged: keep focus where it is
  list.dataset.key = key;
  list.replaceChildren(...accounts.map((a) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'account';
    b.dataset.profile = a.profile;
    if (a.selected) b.setAttribute('aria-current', 'true');
    const avatar = document.createElement('span');
    avatar.className = 'avatar initials small';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = a.initials;
    const name = document.createElement('span');
    name.className = 'acc-name';
    name.textContent = a.name;
    const issuer = document.createElement('span');
    issuer.className = 'acc-issuer muted small';
    issuer.textContent = `${a.issuer} · ${a.profile}`;
    b.append(avatar, name, issuer);
    if (a.problem) {
      const problem = document.createElement('span');
      problem.className = 'acc-problem warning small';
      problem.textContent = a.problem;
      b.append(problem);
    }
    b.addEventListener('click', () => call(() => latchkey.switchAccount(a.profile), b));
    li.append(b);
    return li;
  }));
}

function renderSetup(setup, previous) {
  const form = $('setup-form');
  show(form, !!setup);
  if (!setup) return;
  // Fill the fields when the form first appears; don't overwrite what the user is typing.
  const fresh = !previous || previous.phase !== 'setup' || !previous.setup;
  const fields = [['f-issuer', setup.issuer], ['f-client', setup.clientId], ['f-scopes', setup.scopes]];
  for (const [id, f] of fields) {
    const input = $(id);
    if (fresh || f.readOnly) input.value = f.value;
    input.readOnly = f.readOnly;
    input.setAttribute('aria-readonly', String(f.readOnly));
    const note = $(`${id}-note`);
    if (!note.dataset.original) note.dataset.original = note.textContent;
    note.textContent = f.readOnly ? `${f.note}.` : note.dataset.original;
  }
  text('user-file', setup.userFile ? `Your settings are saved in ${setup.userFile}.` : '');
  const redirect = setup.appRedirect || { value: 'scheme', readOnly: false, note: null };
  if (fresh || redirect.readOnly) {
    $('f-redirect-loopback').checked = redirect.value === 'loopback';
    $('f-redirect-scheme').checked = redirect.value !== 'loopback';
    suggestRedirect();
  }
  for (const id of ['f-redirect-scheme', 'f-redirect-loopback']) $(id).disabled = redirect.readOnly;
  if (!$('f-redirect-note').dataset.original) $('f-redirect-note').dataset.original = $('f-redirect-note').textContent;
  $('f-redirect-note').textContent = redirect.readOnly ? `${redirect.note}.` : $('f-redirect-note').dataset.original;
  const adding = setup.adding || null;
  show($('setup-intro'), !adding);
  show($('setup-adding'), !!adding);
  text('setup-adding-name', adding || '');
  text('setup-title', adding ? 'Add an account' : 'Set up Latchkey');
  show($('cancel-add'), !!adding);
}

/** A Google issuer takes loopback redirects only for desktop clients: say so, and pick it. */
function suggestRedirect() {
  let google = false;
  try { google = new URL($('f-issuer').value).hostname === 'accounts.google.com'; } catch { /* not a URL yet */ }
  if (google && !$('f-redirect-loopback').disabled) {
    $('f-redirect-loopback').checked = true;
    $('f-redirect-note').textContent = 'Google does not accept app links for desktop apps, so a local address is used.';
  }
}

function renderSignedOut(vm) {
  text('so-provider-name', vm.provider ? vm.provider.name : 'your provider');
  text('so-issuer', vm.provider ? vm.provider.issuer : '');
}

function renderWaiting(vm) {
  const w = vm.waiting || {};
  text('w-provider-name', vm.provider ? vm.provider.name : 'your provider');
  show($('w-finishing'), !!w.finishing);
  show($('w-browser-problem'), !!w.browserProblem);
  text('w-browser-problem', w.browserProblem
    ? `The browser could not be opened (${w.browserProblem}). Copy the sign-in link and open it in your browser.`
    : '');
  text('w-expires', w.expiresAt.text);
  $('w-link').value = w.signInUrl || '';
  show($('w-loopback'), !!w.canUseLoopback);
}

function scopeItem(s) {
  const li = document.createElement('li');
  li.dataset.scope = s.scope;
  const code = document.createElement('code');
  code.textContent = s.scope;
  const desc = document.createElement('span');
  desc.className = 'desc';
  desc.textContent = s.description || 'No description available';
  li.append(code, desc);
  return li;
}

function renderSignedIn(id) {
  if (!id) return;
  text('id-name', id.name || id.preferredUsername || id.subject);
  text('id-email', id.email ? `${id.email}${id.emailVerified === false ? ' (not verified)' : ''}` : '');
  const pic = $('id-picture');
  if (id.picture) { pic.src = id.picture; } else { pic.removeAttribute('src'); }
  show(pic, !!id.picture);
  show($('id-initials'), !id.picture);
  text('id-initials', id.initials);
  text('id-subject', id.subject);
  text('id-issuer', id.issuer);
  show($('id-username-label'), !!id.preferredUsername);
  show($('id-username'), !!id.preferredUsername);
  text('id-username', id.preferredUsername);
  text('id-profile', id.profile);

  $('granted').replaceChildren(...id.granted.map(scopeItem));
  show($('not-granted-block'), id.notGranted.length > 0);
  $('not-granted').replaceChildren(...id.notGranted.map(scopeItem));

  const grants = id.grants || [];
  const claims = id.accessClaims;
  show($('claims-card'), grants.length > 0 || !!id.groupsOverage || !!claims);
  if (grants.length || id.groupsOverage) {
    const rows = [];
    for (const group of grants) {
      const dt = document.createElement('dt');
      dt.textContent = group.label;
      dt.dataset.kind = group.kind;
      const dd = document.createElement('dd');
      const ul = document.createElement('ul');
      ul.className = 'grant-values';
      for (const g of group.values) {
        const li = document.createElement('li');
        li.dataset.claim = g.claim;
        li.dataset.source = g.source;
        const value = document.createElement('span');
        value.className = 'mono';
        value.textContent = g.value;
        const from = document.createElement('span');
        from.className = 'muted small';
        from.textContent = ` ${g.name ? `(${g.name}) ` : ''}from the ${g.source}, ${g.claim}`;
        li.append(value, from);
        ul.append(li);
      }
      dd.append(ul);
      rows.push(dt, dd);
    }
    if (id.groupsOverage) {
      const dt = document.createElement('dt');
      dt.textContent = 'Groups';
      const dd = document.createElement('dd');
      dd.id = 'groups-overage';
      dd.textContent = 'Too many groups to list: the provider left them out of the token.';
      rows.push(dt, dd);
    }
    $('claims').replaceChildren(...rows);
  } else if (claims) {
    const rows = [];
    for (const [label, values] of [['Roles', claims.roles], ['Groups', claims.groups], ['Permissions', claims.permissions]]) {
      if (!values.length) continue;
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = values.join(', ');
      rows.push(dt, dd);
    }
    $('claims').replaceChildren(...rows);
  }

  const expiry = $('session-expiry');
  // Times come formatted (view.rs `Moment`): the page does no date arithmetic.
  expiry.dataset.expiresAt = id.expiresAt.at;
  expiry.textContent = `Access expires at ${id.expiresAt.text}.`;
  text('session-refresh', id.refreshable
    ? 'It is renewed automatically in the background; you stay signed in.'
    : 'The provider did not allow automatic renewal; you will need to sign in again when it expires.');
  text('session-obtained', id.obtained);
}

// ---------------------------------------------------------------- actions

/** Runs a plugin call (`action`), applies the view it answers, and shows its error. */
async function call(action, button, { form = false } = {}) {
  if (button) button.disabled = true;
  try {
    apply(await action());
    return true;
  } catch (e) {
    const err = (e && typeof e === 'object') ? e : { kind: 'internal', message: String(e) };
    if (form) {
      show($('form-error'), true);
      text('form-error', err.message);
    } else {
      renderBanner({ kind: err.kind, title: 'That did not work', message: err.message, retry: null });
    }
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

async function copyLink() {
  const url = view && view.waiting && view.waiting.signInUrl;
  if (!url) return;
  try {
    await navigator.clipboard.writeText(url);
    text('live', 'Sign-in link copied.');
    $('copy-link').textContent = 'Copied';
    setTimeout(() => { $('copy-link').textContent = 'Copy sign-in link'; }, 2000);
  } catch {
    // No clipboard access: show the link selected, ready for Ctrl+C.
    const field = $('w-link');
    show(field, true);
    field.focus();
    field.select();
    text('live', 'Press Control+C to copy the selected sign-in link.');
  }
}

function wire() {
  $('sign-in').addEventListener('click', (e) => call(latchkey.signIn, e.currentTarget));
  $('cancel').addEventListener('click', (e) => call(latchkey.cancel, e.currentTarget));
  $('open-again').addEventListener('click', (e) => call(latchkey.openBrowserAgain, e.currentTarget));
  $('copy-link').addEventListener('click', copyLink);
  $('add-account').addEventListener('click', (e) => call(() => latchkey.addAccount(), e.currentTarget));
  $('add-account-other').addEventListener('click', (e) =>
    call(() => latchkey.addAccount({ otherProvider: true }), e.currentTarget));
  $('cancel-add').addEventListener('click', (e) => call(latchkey.cancelAddAccount, e.currentTarget));
  $('sign-out-all').addEventListener('click', (e) => call(latchkey.signOutAll, e.currentTarget));
  $('use-loopback').addEventListener('click', (e) => call(latchkey.useLoopback, e.currentTarget));
  $('f-issuer').addEventListener('input', suggestRedirect);
  $('sign-out').addEventListener('click', (e) => {
    const alsoProvider = $('also-provider').checked;
    call(() => latchkey.signOut({ alsoProvider }), e.currentTarget);
  });
  $('banner-dismiss').addEventListener('click', (e) => call(latchkey.dismiss, e.currentTarget));
  $('notice-dismiss').addEventListener('click', (e) => call(latchkey.dismiss, e.currentTarget));
  $('notice-retry').addEventListener('click', (e) => call(latchkey.retry, e.currentTarget));
  $('banner-retry').addEventListener('click', (e) => {
    const action = e.currentTarget.dataset.action;
    call(action === 'signIn' ? latchkey.signIn : latchkey.retry, e.currentTarget);
  });
  $('setup-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    show($('form-error'), false);
    const form = {
      issuer: $('f-issuer').value, clientId: $('f-client').value, scopes: $('f-scopes').value,
      appRedirect: $('f-redirect-loopback').checked ? 'loopback' : 'scheme',
    };
    const button = $('save-settings');
    button.textContent = 'Checking the provider…';
    await call(() => latchkey.saveSettings(form), button, { form: true });
    button.textContent = 'Check and save';
  });
  // Escape cancels a sign-in in progress.
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && view && view.phase === 'waiting') call(latchkey.cancel, null);
  });
}

// ---------------------------------------------------------------- start

wire();
// The first view, then every change after it: nothing is missed between the two. Only then is the
// page "ready" (tests wait for body[data-ready] before sending deep links).
latchkey.watch((v) => {
  apply(v);
  document.body.dataset.ready = 'true';
});
