// tauri-plugin-latchkey: the window's API. Plain ES, no bundler: with `withGlobalTauri` it uses
// `window.__TAURI__.core.invoke`; import it as a module (`<script type="module">`), or copy it
// next to your page. Every function resolves to the whole view model (token-free by
// construction: no command returns a token) and rejects with `{ kind, message }`.
//
//   import { state, watch, signIn, cancel, signOut } from './latchkey.js';
//   const stop = watch((view) => render(view));
//   await signIn();

const PLUGIN = 'plugin:latchkey|';

function invoke(command, args = {}) {
  const tauri = globalThis.__TAURI__;
  if (!tauri || !tauri.core) {
    return Promise.reject({ kind: 'internal', message: 'Tauri IPC is missing: set app.withGlobalTauri to true' });
  }
  return tauri.core.invoke(PLUGIN + command, args);
}

/** The current view model. */
export const state = () => invoke('get_state');

/** Opens the sign-in page in the system browser; the redirect comes back to the app. */
export const signIn = () => invoke('sign_in');

/** Cancels the sign-in in progress. */
export const cancel = () => invoke('cancel_sign_in');

/** Opens the sign-in page again (same sign-in, same deadline). */
export const openBrowserAgain = () => invoke('open_browser_again');

/**
 * Revokes and forgets the session; with `alsoProvider`, also opens the provider's sign-out page
 * in the system browser.
 */
export const signOut = ({ alsoProvider = false } = {}) => invoke('sign_out', { alsoProvider });

/** The error banner's retry: refresh when signed in, otherwise read the settings again. */
export const retry = () => invoke('retry');

/** Dismisses the banner and any info notice. */
export const dismiss = () => invoke('dismiss');

/** The first-run form (only before the app is set up): `{ issuer, clientId, scopes }`. */
export const saveSettings = (form) => invoke('save_settings', { form });

/** Shows another signed-in account (`view.accounts[].profile`), silently from the keychain. */
export const switchAccount = (profile) => invoke('switch_account', { profile });

/**
 * Adds an account: with the shown account's provider (signs in at once), or with
 * `{ otherProvider: true }` the first-run form for a new account.
 */
export const addAccount = ({ otherProvider = false } = {}) => invoke('add_account', { otherProvider });

/** Leaves the "another provider" form without adding an account. */
export const cancelAddAccount = () => invoke('cancel_add_account');

/**
 * "The provider refused this app's link": from now on this account signs in through a local
 * address (loopback), starting again at once.
 */
export const useLoopback = () => invoke('use_loopback');

/** Signs out of every account. */
export const signOutAll = () => invoke('sign_out_all');

/**
 * Calls `onView` with the view model now and after every change, until the returned function is
 * called. It long-polls `next_state` rather than listening to events: no event script is ever
 * evaluated in the page, which keeps WebKit's UI process from starting a JavaScript engine.
 */
export function watch(onView) {
  let stopped = false;
  let seq = null;
  (async () => {
    while (!stopped) {
      try {
        const view = await invoke('next_state', { after: seq });
        if (stopped) break;
        seq = view.seq;
        onView(view);
      } catch {
        // Only when the IPC itself fails, as while the app quits: pause rather than spin.
        await new Promise((resolve) => { setTimeout(resolve, 1000); });
      }
    }
  })();
  return () => { stopped = true; };
}
