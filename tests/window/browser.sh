#!/bin/sh
# $BROWSER for the window suite: the dev login driver (tests/browser/driver.mjs), with per-launch
# settings. The app reads $BROWSER once at start, so a test that needs a different user behaviour
# for the next launch (DRIVER_ACTION=none, then approve) writes `export DRIVER_...=...` lines into
# $LATCHKEY_E2E_BROWSER_ENV instead of restarting the app.
if [ -n "$LATCHKEY_E2E_BROWSER_ENV" ] && [ -f "$LATCHKEY_E2E_BROWSER_ENV" ]; then
  . "$LATCHKEY_E2E_BROWSER_ENV"
fi
exec node "$(dirname "$0")/../browser/driver.mjs" "$@"
