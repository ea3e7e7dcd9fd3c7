#!/usr/bin/env bash
# The desktop app beside a hello-world Tauri 2 window built the same way (release profile of this
# workspace, `tauri build --bundles deb`, same Tauri version from the same Cargo.lock), in one run:
#
#   - cold start: process start -> first paint of the signed-in window (stored session, local
#     provider, silent sign-in) vs. hello-world process start -> first paint;
#   - idle memory: PSS of the process and its WebKit children, from /proc/*/smaps_rollup, with and
#     without the app's WebKitGTK settings (LATCHKEY_WEBVIEW_TUNING=0);
#   - release binary and .deb sizes.
#
# Env: CARGO_TARGET_DIR (default <repo>/target), BENCH_RUNS (default 7), SKIP_BUILD=1.
# Targets: cold start <= hello-world + 200 ms; memory <= 200 MB PSS; .deb <= 8 MB.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PATH="$HOME/.cargo/bin:$PATH"
TAURI=$ROOT/tests/scripts/tauri-cli
HELLO=${BENCH_HELLO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/latchkey-hello.XXXXXX")}
cleanup() { [[ -n ${BENCH_HELLO_DIR:-} ]] || rm -rf "$HELLO"; }
trap cleanup EXIT
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

[[ -d $ROOT/tests/node_modules/oidc-provider ]] || (cd "$ROOT/tests" && npm ci --no-audit --no-fund >&2)
command -v tauri-driver >/dev/null || cargo install tauri-driver --version '^2' --locked >&2

# ---------------------------------------------------------------- hello-world, generated here
mkdir -p "$HELLO/src-tauri/src" "$HELLO/src-tauri/capabilities" "$HELLO/ui"
cp -r "$ROOT/icons" "$HELLO/src-tauri/icons"
cp "$ROOT/Cargo.lock" "$HELLO/src-tauri/Cargo.lock"   # the same crate versions as the app
# The same release profile as the workspace.
profile=$(sed -n '/^\[profile.release\]/,/^\[/p' "$ROOT/Cargo.toml" | sed '$ {/^\[/d}')
cat > "$HELLO/src-tauri/Cargo.toml" <<TOML
[package]
name = "hello-world"
version = "0.1.0"
edition = "2024"

[workspace]

[build-dependencies]
tauri-build = "2"

[dependencies]
tauri = "2"

[features]
custom-protocol = ["tauri/custom-protocol"]

$profile
TOML
echo 'fn main() { tauri_build::build() }' > "$HELLO/src-tauri/build.rs"
echo 'fn main() { tauri::Builder::default().run(tauri::generate_context!()).expect("run"); }' \
  > "$HELLO/src-tauri/src/main.rs"
cat > "$HELLO/src-tauri/tauri.conf.json" <<'JSON'
{
  "productName": "hello-world",
  "identifier": "com.example.hello",
  "version": "0.1.0",
  "build": { "frontendDist": "../ui" },
  "app": {
    "withGlobalTauri": true,
    "windows": [{ "label": "main", "title": "Hello", "width": 560, "height": 720 }],
    "security": { "csp": "default-src 'self'; connect-src ipc: http://ipc.localhost" }
  },
  "bundle": {
    "active": true, "targets": ["deb"],
    "icon": ["icons/32x32.png", "icons/128x128.png", "icons/128x128@2x.png", "icons/icon.icns", "icons/icon.ico"]
  }
}
JSON
echo '{"identifier":"default","windows":["main"],"permissions":["core:default"]}' \
  > "$HELLO/src-tauri/capabilities/default.json"
cat > "$HELLO/ui/index.html" <<'HTML'
<!doctype html><html><head><meta charset="utf-8"><title>Hello</title>
<script src="paint.js" defer></script></head><body><h1>Hello, world</h1></body></html>
HTML
# The same first-paint mark as the app's page (body[data-shown-at]).
echo "requestAnimationFrame(() => { document.body.dataset.shownAt = String(Date.now()); document.body.dataset.ready = 'true'; });" \
  > "$HELLO/ui/paint.js"

# ---------------------------------------------------------------- release builds + .deb
if [[ ${SKIP_BUILD:-} != 1 ]]; then
  say "tauri build --bundles deb: latchkey-app"
  (cd "$ROOT/src-tauri" && "$TAURI" build --bundles deb >&2)
  say "tauri build --bundles deb: hello-world"
  (cd "$HELLO/src-tauri" && "$TAURI" build --bundles deb >&2)
fi
export BENCH_APP=$CARGO_TARGET_DIR/release/latchkey-app
export BENCH_HELLO=$CARGO_TARGET_DIR/release/hello-world
export BENCH_APP_DEB=$(ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/Latchkey_*.deb | head -n1)
export BENCH_HELLO_DEB=$(ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/hello-world_*.deb | head -n1)

cleanup   # the binaries and .debs are in the target dir; exec below skips the trap

# ---------------------------------------------------------------- measure
say "measuring (private D-Bus, keyring, Xvfb, dev provider)"
exec dbus-run-session -- "$ROOT/tests/window/session.sh" node "$HERE/measure.mjs"
