#!/usr/bin/env bash
# Runs inside tests/scripts/with-keyring; see tests/bench/run.
set -euo pipefail
root=$(pwd)
bin=${BENCH_BIN_DIR:-$root/target/release}
work=$(mktemp -d /tmp/latchkey-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" 2>/dev/null || true' EXIT

start_provider() { # $1: access token TTL, then VAR=value for the provider
  env DEV_QUIET=1 DEV_ACCESS_TOKEN_TTL="$1" "${@:2}" node tests/provider/server.mjs --port 0 >"$work/provider.out" 2>"$work/provider.log" &
  for _ in $(seq 1 100); do grep -q '^READY' "$work/provider.out" 2>/dev/null && break; sleep 0.1; done
  issuer=$(sed -n 's/^READY //p' "$work/provider.out")
  port=${issuer##*:}
}
stats() { node -e "fetch('$issuer/__dev/stats').then(r=>r.json()).then(s=>console.log(s.token_requests.refresh_token||0))"; }

export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache
mkdir -p "$HOME"
export LATCHKEY_CLIENT_ID=latchkey-desktop LATCHKEY_SCOPES="openid profile email offline_access api:read"
export BROWSER="node $root/tests/browser/driver.mjs"

echo "Latchkey benchmarks ($(nproc) cores, release build)"
echo

# 1. `latchkey token`: from the kernel token cache, from the Secret Service (cache off), the
#    minimal Secret Service reader, and a hello-world of the same profile (the floor).
start_provider 3600
export LATCHKEY_ISSUER=$issuer
"$bin/latchkey" login >/dev/null 2>&1
"$bin/latchkey" token >/dev/null # fills the cache, as any earlier call would
name="default/latchkey-desktop@$issuer"
hyperfine -N --warmup 10 --runs 200 --style none --export-json "$work/h.json" \
  "$bin/latchkey token" \
  "env LATCHKEY_TOKEN_CACHE=off $bin/latchkey token" \
  "$bin/examples/read_secret latchkey $name" \
  "$bin/examples/hello" \
  "$bin/latchkey exec-credential" >/dev/null 2>&1
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
cache, nocache, reader, hello, kube = r
ms = lambda x: x * 1000
print("1. Whole-process time of a valid token (hyperfine, 200 runs each, one run)")
row = lambda label, x: print(f"   {label:34s}{ms(x['mean']):6.2f} ms ± {ms(x['stddev']):.2f}  (median {ms(x['median']):.2f})")
row("latchkey token, kernel cache", cache)
row("latchkey token, Secret Service", nocache)
row("minimal Secret Service reader", reader)
row("hello-world, same profile", hello)
row("latchkey exec-credential, cache", kube)
print(f"   cache / hello-world               {cache['mean']/hello['mean']:6.2f}x   (target <= 2x)")
print(f"   Secret Service / minimal reader   {nocache['mean']/reader['mean']:6.2f}x   (target <= 1.3x; includes `env`)")
print(f"   exec-credential / token           {kube['mean']/cache['mean']:6.2f}x   (target <= 1.1x)")
PY
echo

# 2. Callback-to-identity: provider wait vs. Latchkey's own time (5 sign-ins).
for _ in 1 2 3 4 5; do
  "$bin/latchkey" logout >/dev/null 2>&1
  LATCHKEY_LOG=info "$bin/latchkey" login 2>&1 >/dev/null | grep 'signed in' | sed 's/\x1b\[[0-9;]*m//g' >>"$work/timing.log"
done
python3 - "$work/timing.log" <<'PY'
import re, statistics, sys
rows = [dict((k, float(v)) for k, v in re.findall(r'(\w+_ms)=([\d.]+)', l)) for l in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rows)
print(f"2. Callback to identity, median of {len(rows)} sign-ins (code exchange, ID token, userinfo, keychain)")
print(f"   total                        {med('total_ms'):6.2f} ms")
print(f"   waiting on the provider      {med('provider_ms'):6.2f} ms")
print(f"   Latchkey's own time          {med('own_ms'):6.2f} ms   (target <= 25 ms)")
PY
echo
"$bin/latchkey" logout >/dev/null 2>&1
kill %1 2>/dev/null || true; wait 2>/dev/null || true

# 3. 100 concurrent in-process token requests at expiry.
start_provider 4
export LATCHKEY_ISSUER=$issuer
"$bin/latchkey" login >/dev/null 2>&1
before=$(stats)
sleep 4.5
result=$("$bin/examples/concurrent_tokens" 100)
after=$(stats)
echo "3. 100 concurrent in-process token requests at expiry"
echo "   $result"
echo "   refreshes seen by the provider: $((after - before))   (target: exactly 1)"

# 4. `latchkey headers` with a DPoP-bound token (RFC 9449), beside `latchkey token` of the same
#    session: both come from the kernel token cache (the DPoP key is cached beside its token);
#    headers also signs a proof. The same with the cache off shows what the cache saves.
"$bin/latchkey" logout >/dev/null 2>&1
kill %1 2>/dev/null || true; wait 2>/dev/null || true
start_provider 3600 DEV_DPOP=on
export LATCHKEY_ISSUER=$issuer
"$bin/latchkey" login >/dev/null 2>&1
"$bin/latchkey" token >/dev/null
hyperfine -N --warmup 10 --runs 200 --style none --export-json "$work/d.json" \
  "$bin/latchkey token" \
  "$bin/latchkey headers --url $issuer/me" \
  "env LATCHKEY_TOKEN_CACHE=off $bin/latchkey token" \
  "env LATCHKEY_TOKEN_CACHE=off $bin/latchkey headers --url $issuer/me" >/dev/null 2>&1
python3 - "$work/d.json" <<'PY'
import json, sys
token, headers, nocache, headers_nocache = json.load(open(sys.argv[1]))["results"]
ms = lambda x: x * 1000
print("4. latchkey headers with a DPoP-bound token (hyperfine, 200 runs each)")
row = lambda label, x: print(f"   {label:34s}{ms(x['mean']):6.2f} ms ± {ms(x['stddev']):.2f}  (median {ms(x['median']):.2f})")
row("latchkey token, kernel cache", token)
row("latchkey headers, DPoP proof", headers)
row("latchkey token, Secret Service", nocache)
row("latchkey headers, Secret Service", headers_nocache)
print(f"   headers / token                   {headers['mean']/token['mean']:6.2f}x   (target <= 1.3x)")
PY
"$bin/latchkey" logout >/dev/null 2>&1

# 5. Side by side with the baseline (tests/bench/run: BENCH_BASELINE), in this run, against this
#    provider (DPoP on): each CLI signs its own profile in, then the same commands. Callback to
#    identity alternates the two CLIs' sign-ins.
if [[ -n ${BENCH_BASE_BIN:-} ]]; then
  base=$BENCH_BASE_BIN
  for who in now base; do
    cli=$bin/latchkey; [[ $who == base ]] && cli=$base
    "$cli" --profile "$who" login >/dev/null 2>&1
    "$cli" --profile "$who" token >/dev/null
  done
  hyperfine -N --warmup 10 --runs 200 --style none --export-json "$work/s.json" \
    "$bin/latchkey --profile now token" "$base --profile base token" \
    "$bin/latchkey --profile now headers --url $issuer/me" "$base --profile base headers --url $issuer/me" \
    "env LATCHKEY_TOKEN_CACHE=off $bin/latchkey --profile now token" \
    "env LATCHKEY_TOKEN_CACHE=off $base --profile base token" >/dev/null 2>&1
  : >"$work/side.log"
  for _ in $(seq 1 10); do
    for who in now base; do
      cli=$bin/latchkey; [[ $who == base ]] && cli=$base
      "$cli" --profile "$who" logout >/dev/null 2>&1
      LATCHKEY_LOG=info "$cli" --profile "$who" login 2>&1 >/dev/null | grep 'signed in' |
        sed 's/\x1b\[[0-9;]*m//g; s/^/'"$who"' /' >>"$work/side.log"
    done
  done
  python3 - "$work/s.json" "$work/side.log" "${BENCH_BASE_NAME:-baseline}" <<'PY'
import json, re, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
name = sys.argv[3]
ms = lambda x: x * 1000
print()
print(f"5. Side by side with the baseline {name}, same run: medians (hyperfine, 200 runs each;")
print(f"   sign-ins alternate), the mean ± standard deviation in brackets")
print(f"   {'':34s}{'this build':>24s}{name:>26s}{'ratio':>8s}")
def row(label, now, base):
    cell = lambda x: f"{ms(x['median']):7.2f} ms ({ms(x['mean']):5.2f} ± {ms(x['stddev']):4.2f})"
    print(f"   {label:34s}{cell(now):>24s}{cell(base):>26s}{now['median']/base['median']:7.2f}x")
row("latchkey token, kernel cache", r[0], r[1])
row("latchkey headers, DPoP proof", r[2], r[3])
row("latchkey token, Secret Service", r[4], r[5])
rows = {}
for line in open(sys.argv[2]):
    who, rest = line.split(" ", 1)
    rows.setdefault(who, []).append(dict((k, float(v)) for k, v in re.findall(r'(\w+_ms)=([\d.]+)', rest)))
med = lambda who, k: statistics.median(x[k] for x in rows[who])
for k, label in (("own_ms", "callback to identity, own time"), ("total_ms", "callback to identity, total")):
    now, base = med("now", k), med("base", k)
    print(f"   {label:34s}{now:7.2f} ms{'':15s}{base:9.2f} ms{'':15s}{now/base:7.2f}x   ({len(rows['now'])} each)")
PY
fi
