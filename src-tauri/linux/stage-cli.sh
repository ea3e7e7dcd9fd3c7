#!/usr/bin/env bash
# Tauri's beforeBundleCommand: stages the `latchkey` CLI next to the app for the .deb and .rpm
# (bundle.linux.*.files in tauri.conf.json): the binary (release, or debug for a debug bundle), its man page and its bash, zsh
# and fish completions, all generated from the binary's own clap definition.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STAGE=$ROOT/target/cli-stage
# Tauri tells its hooks which profile it bundles: `tauri bundle --debug` stages the debug CLI.
if [[ ${TAURI_ENV_DEBUG:-} == true ]]; then
  cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p latchkey-cli
  profile=debug
else
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p latchkey-cli
  profile=release
fi
rm -rf "$STAGE"
mkdir -p "$STAGE"
install -m 0755 "$TARGET/$profile/latchkey" "$STAGE/latchkey"
"$STAGE/latchkey" manpage | gzip -9n >"$STAGE/latchkey.1.gz"
"$STAGE/latchkey" completions bash >"$STAGE/latchkey.bash"
"$STAGE/latchkey" completions zsh >"$STAGE/_latchkey"
"$STAGE/latchkey" completions fish >"$STAGE/latchkey.fish"
echo "stage-cli: staged latchkey $("$STAGE/latchkey" --version | cut -d' ' -f2) in $STAGE" >&2
