#!/usr/bin/env bash
# The real-window end-to-end suite. From anywhere:
#
#   tests/window/run.sh                 # build the debug app, then run every case
#   tests/window/run.sh --test-name-pattern forged   # extra args go to `node --test`
#
# Env: CARGO_TARGET_DIR (where the debug app is built; default <repo>/target), SKIP_BUILD=1 (use
# the binary that is there), LATCHKEY_E2E_ARTIFACTS (screenshots; default target/e2e-artifacts).
# Needs the Debian packages in packages.txt; as root it installs missing ones itself.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export LATCHKEY_APP=$CARGO_TARGET_DIR/debug/latchkey-app
export LATCHKEY_E2E_ARTIFACTS=${LATCHKEY_E2E_ARTIFACTS:-$ROOT/target/e2e-artifacts}
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# 1. System packages.
need=()
for cmd in Xvfb xvfb-run dbus-run-session dbus-send gnome-keyring-daemon secret-tool WebKitWebDriver \
           chromium xdg-mime update-desktop-database import pkg-config; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
pkg-config --exists webkit2gtk-4.1 2>/dev/null || need+=(webkit2gtk-4.1)
if ((${#need[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages (missing: ${need[*]})"
    apt-get update -qq
    # shellcheck disable=SC2046
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(grep -v '^#' "$HERE/packages.txt") >&2
  else
    echo "missing: ${need[*]}; install: apt-get install $(grep -v '^#' "$HERE/packages.txt" | tr '\n' ' ')" >&2
    exit 2
  fi
fi

# 2. Node tools (dev provider, login driver).
if [[ ! -d $ROOT/tests/node_modules/oidc-provider || ! -d $ROOT/tests/node_modules/playwright-core ]]; then
  say "npm ci (tests/)"
  (cd "$ROOT/tests" && npm ci --no-audit --no-fund >&2)
fi

# 3. tauri-driver.
if ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked >&2
fi

# 4. The debug app.
if [[ ${SKIP_BUILD:-} != 1 ]]; then
  say "cargo build -p latchkey-app (target dir $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build -p latchkey-app >&2)
fi
[[ -x $LATCHKEY_APP ]] || { echo "no app binary at $LATCHKEY_APP" >&2; exit 2; }

# 5. A private D-Bus session with an unlocked keyring, a display, then the suite.
mkdir -p "$LATCHKEY_E2E_ARTIFACTS" && rm -f "$LATCHKEY_E2E_ARTIFACTS"/*.png
say "running the window suite (screenshots in $LATCHKEY_E2E_ARTIFACTS)"
exec dbus-run-session -- "$HERE/session.sh" \
  node --test --test-concurrency=1 --test-reporter=spec "$@" "$HERE/app.test.mjs"
