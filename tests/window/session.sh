#!/usr/bin/env bash
# The inside of the window suite: runs under `dbus-run-session` (see run.sh). Sets up a private,
# unlocked gnome-keyring and an Xvfb display, then runs the given command (default: the suite).
# Everything it creates lives in one temp dir, removed at exit.
set -euo pipefail

WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-window.XXXXXX")
XVFB_PID=
cleanup() {
  local rc=$?
  if [[ -n $XVFB_PID ]]; then kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# Isolated homes: the app, deep-link registration and the keyring all write into them.
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_CACHE_HOME=$WORK/home/.cache
export XDG_DATA_HOME=$WORK/home/.local/share XDG_RUNTIME_DIR=$WORK/runtime
mkdir -p "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export LATCHKEY_E2E_WORK=$WORK

# A private Secret Service, unlocked (recipe: notes/keyring.md). Wait for it to own its name,
# or D-Bus activation may start a second daemon.
unset DISPLAY
printf %s "latchkey-e2e" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
for _ in $(seq 100); do
  if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; then
    break
  fi
  sleep 0.1
done

# A display. -displayfd picks a free number and tells us which.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$WORK/display" 2>"$WORK/xvfb.log" &
XVFB_PID=$!
for _ in $(seq 100); do [[ -s $WORK/display ]] && break; sleep 0.05; done
[[ -s $WORK/display ]] || { echo "Xvfb did not start:" >&2; cat "$WORK/xvfb.log" >&2; exit 1; }
export DISPLAY=":$(head -n1 "$WORK/display")"

"$@"
