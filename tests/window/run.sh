#!/usr/bin/env bash
# The real-window end-to-end suite. From anywhere:
#
#   tests/window/run.sh                 # build the debug app, then run every case
#   tests/window/run.sh --test-name-pattern forged   # extra args go to `node --test`
#
# Env: CARGO_TARGET_DIR (where the debug app is built; default <repo>/target), SKIP_BUILD=1 (use
# the binary that is there), LATCHKEY_E2E_ARTIFACTS (screenshots; default target/e2e-artifacts).
# Installs what it needs with tests/scripts/install-deps --window.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export LATCHKEY_APP=$CARGO_TARGET_DIR/debug/latchkey-app
export LATCHKEY_E2E_ARTIFACTS=${LATCHKEY_E2E_ARTIFACTS:-$ROOT/target/e2e-artifacts}
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# 1. System packages, npm packages and tauri-driver: the same installer as every other suite.
"$ROOT/tests/scripts/install-deps" --window >&2

# 2. The debug app, the template app (tests/template) and the CLI (one case checks that it shares
#    the window's session), in one cargo call so they share every dependency. The UI is embedded
#    (`custom-protocol`, as `tauri build` does), so tests/window/installed.sh bundles this very
#    binary into the .deb instead of building the app again.
export ACME_APP=$CARGO_TARGET_DIR/debug/acme-signin
if [[ ${SKIP_BUILD:-} != 1 ]]; then
  say "cargo build -p latchkey-app -p acme-signin -p latchkey-cli --features latchkey-app/custom-protocol (target dir $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build -p latchkey-app -p acme-signin -p latchkey-cli --features latchkey-app/custom-protocol >&2)
fi
[[ -x $ACME_APP ]] || { echo "no template app binary at $ACME_APP" >&2; exit 2; }
[[ -x $LATCHKEY_APP ]] || { echo "no app binary at $LATCHKEY_APP" >&2; exit 2; }
[[ -x $CARGO_TARGET_DIR/debug/latchkey ]] || { echo "no CLI binary at $CARGO_TARGET_DIR/debug/latchkey" >&2; exit 2; }

# 3. A private D-Bus session with an unlocked keyring, a display, then the suite.
mkdir -p "$LATCHKEY_E2E_ARTIFACTS" && rm -f "$LATCHKEY_E2E_ARTIFACTS"/*.png
say "running the window suite (screenshots in $LATCHKEY_E2E_ARTIFACTS)"
exec dbus-run-session -- "$HERE/session.sh" \
  node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "$@" "$HERE/template.test.mjs" "$HERE/a11y.test.mjs" "$HERE/lemonldap.test.mjs" "$HERE/app.test.mjs"
