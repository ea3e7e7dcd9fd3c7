#!/usr/bin/env bash
# The app as users install it. Builds the bundles (.deb and .rpm; release, or with --debug the
# window suite's debug app), installs the .deb with
# dpkg, and runs installed.test.mjs against /usr/bin/latchkey-app in a private session (Xvfb,
# D-Bus, keyring), with redirects delivered by xdg-open. Removes the package again at exit.
#
# It changes the system (dpkg -i as root, or through sudo), so it refuses to run over a latchkey
# package that is already installed. Env: CARGO_TARGET_DIR (default <repo>/target), SKIP_BUILD=1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export LATCHKEY_E2E_ARTIFACTS=${LATCHKEY_E2E_ARTIFACTS:-$ROOT/target/e2e-artifacts}
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
installed() { dpkg-query -W -f='${Status}' latchkey 2>/dev/null | grep -q 'install ok installed'; }

"$ROOT/tests/scripts/install-deps" --window >&2

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if installed; then
  echo "installed.sh: a latchkey package is already installed, and this test installs and removes its own; remove it first (${sudo:+sudo }dpkg -r latchkey)" >&2
  exit 2
fi

# --debug (what `make test` runs): bundle the debug app the window suite built, with the UI
# embedded, and the debug CLI, so nothing is compiled twice. Without it: the release bundles as
# shipped (`tauri build`: opt-level s, LTO, one codegen unit; about ten minutes on 2 cores).
profile=release
if [[ ${1:-} == --debug ]]; then
  profile=debug
  shift
fi
if [[ ${SKIP_BUILD:-} != 1 ]]; then
  if [[ $profile == debug ]]; then
    # The window suite's own build command: nothing to do after it ran.
    (cd "$ROOT" && cargo build -p latchkey-app -p acme-signin -p latchkey-cli --features latchkey-app/custom-protocol >&2)
    say "tauri bundle --debug --bundles deb,rpm (the debug app, target dir $CARGO_TARGET_DIR)"
    (cd "$ROOT/src-tauri" && "$ROOT/tests/scripts/tauri-cli" bundle --debug --bundles deb,rpm >&2)
  else
    say "tauri build --bundles deb,rpm (release, target dir $CARGO_TARGET_DIR)"
    (cd "$ROOT/src-tauri" && "$ROOT/tests/scripts/tauri-cli" build --bundles deb,rpm >&2)
  fi
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
export LATCHKEY_DEB=$CARGO_TARGET_DIR/$profile/bundle/deb/Latchkey_${version}_$(dpkg --print-architecture).deb
export LATCHKEY_RPM=$CARGO_TARGET_DIR/$profile/bundle/rpm/Latchkey-${version}-1.$(uname -m).rpm
for f in "$LATCHKEY_DEB" "$LATCHKEY_RPM"; do
  [[ -f $f ]] || { echo "installed.sh: no bundle at $f (did tauri build fail?)" >&2; exit 1; }
done

remove() { if installed; then $sudo dpkg -r latchkey >/dev/null; fi; }
trap remove EXIT INT TERM
say "dpkg -i $(basename "$LATCHKEY_DEB")"
$sudo dpkg -i "$LATCHKEY_DEB" >/dev/null

# The CLI ships in the same packages (tests/README.md): binary, man page, completions.
cli_files=(
  /usr/bin/latchkey
  /usr/share/man/man1/latchkey.1.gz
  /usr/share/bash-completion/completions/latchkey
  /usr/share/zsh/vendor-completions/_latchkey
  /usr/share/fish/vendor_completions.d/latchkey.fish
)
fail() { echo "installed.sh: $*" >&2; exit 1; }
say "the CLI in the .deb: latchkey --version, man -w latchkey, completions"
for f in "${cli_files[@]}"; do [[ -f $f ]] || fail "the .deb did not install $f"; done
[[ $(/usr/bin/latchkey --version) == "latchkey $version" ]] || fail "/usr/bin/latchkey --version: $(/usr/bin/latchkey --version)"
[[ $(man -w latchkey) == /usr/share/man/man1/latchkey.1.gz ]] || fail "man -w latchkey: $(man -w latchkey 2>&1)"
bash -c 'source /usr/share/bash-completion/completions/latchkey && complete -p latchkey' >/dev/null \
  || fail "the bash completion does not register for latchkey"
# Debian's rpm2cpio exits 1 even on success; the greps below are the check.
rpm_files=$( (rpm2cpio "$LATCHKEY_RPM" || true) | cpio -it --quiet 2>/dev/null)
for f in /usr/bin/latchkey /usr/share/man/man1/latchkey.1.gz /usr/share/bash-completion/completions/latchkey \
  /usr/share/zsh/site-functions/_latchkey /usr/share/fish/vendor_completions.d/latchkey.fish; do
  grep -qx ".$f" <<<"$rpm_files" || fail "the .rpm lacks $f"
done

say "running the installed-app suite"
LATCHKEY_APP=/usr/bin/latchkey-app dbus-run-session -- "$HERE/session.sh" \
  node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "$@" "$HERE/installed.test.mjs"

say "dpkg -r latchkey removes the CLI too"
remove
for f in "${cli_files[@]}"; do [[ ! -e $f ]] || fail "dpkg -r left $f behind"; done
