#!/usr/bin/env bash
# bench/peers.sh: the token endpoint, introspection and the browser flow
# over real HTTP on loopback, smartgate side by side with two peers, in the
# same run on this machine:
#
#   smartgate       serve --dev on SQLite, rate limits off, log level warn
#                   (no line per request, like the peers)
#   smartgate-info  the same at the default log level (one JSON line per
#                   request to a file); SMARTGATE_INFO=0 leaves it out
#   hydra           Ory Hydra v2.3.0, built from the Go module proxy in a
#                   scratch module outside the repo (HYDRA_DIR, default
#                   ~/.cache/smartgate-bench/hydra; the binary is cached
#                   there), `serve all --dev` on a SQLite file, log level warn
#   oidc-provider   the Node.js oidc-provider 9.13.3 from npm
#                   (bench/peers/oidc-provider), its in-memory adapter
#
# Modes, each run by bench/cmd/load with CONCURRENCY keep-alive clients:
#
#   cc-secret     client_credentials, client_secret_basic
#   cc-jwt-rs384  client_credentials, private_key_jwt, RS384 assertions
#   cc-jwt-es384  client_credentials, private_key_jwt, ES384 assertions
#   introspect    RFC 7662 by a resource server, over a pool of POOL
#                 distinct tokens minted from that server before the runs
#   authcode      whole authorization-code flows of a public client (PKCE
#                 S256, state, nonce, scope openid offline_access; for
#                 smartgate also user/Patient.rs and aud) with an existing
#                 login session and remembered consent: authorize, its
#                 redirects up to the 303 to the redirect_uri, then the
#                 code exchange; one flow per completed exchange
#   refresh       refresh_token grants of the same client, each load client
#                 its own chain of rotating refresh tokens
#
# In authcode and refresh, every load client is a browser with its own
# cookie jar: before the warm-up of each run it signs in and consents once
# (smartgate: its /login and /consent pages as the demo practitioner;
# hydra: a login and consent provider built into the load generator, over
# Hydra's admin API, remember=true; oidc-provider: the peer's
# /interaction/ endpoint accepts at once). Hydra sends every flow through
# its login and consent provider, even a remembered one (skip=true), so
# its flows take 8 HTTP requests, against 2 for the others. Hydra's
# authcode runs with HYDRA_FLOW_CONCURRENCY (1) clients: on its SQLite
# database, two concurrent flows deadlock in its store ("database is
# locked" after the 5 s busy timeout), see docs/performance.md.
#
# The same client key pairs (RS384: RSA 2048; ES384: P-384) are registered
# with every server. The load generator signs each run's assertions (a
# fresh jti each, exp 4 minutes after signing) before that run's measured
# window, for every server alike: signing an RSA 2048 assertion costs it
# 1.2-2 ms of CPU, and inside the window that took most of a core from the
# server being measured. The warm-up's rate sizes the window's pool (x2);
# a window that uses it all ends early, and its JSON line says
# "ended_by": "count". PRESIGN=0 signs one per request inside the window
# instead (the method of the runs before 2026-11-27).
#
# Each run waits until the machine is quiet (at most QUIET_WAIT s, 30), then makes a 1 s
# warm-up and measures SECONDS_PER_RUN seconds; the
# server's CPU (utime + stime of the process, from /proc/PID/stat) and RSS
# (VmRSS) are read at the start and end of the measured window. ROUNDS
# rounds; within a round, for each mode the targets run one after another
# (interleaved, so a noisy moment of the shared host hits them alike). It
# prints every run as a JSON line and then one table of medians, and checks
# the targets of the token-endpoint issue (smartgate = the warn-level one).
#
# Usage: ./bench/peers.sh     (about 27 minutes, 8 of them signing
#                             assertions; plus ~3 minutes for the first
#                             Hydra build, which is then cached)
#        MODES="authcode refresh" ./bench/peers.sh   (about 8 minutes)
# Environment: ROUNDS (3), SECONDS_PER_RUN (10), CONCURRENCY (16),
#   POOL (10000), MODES, TARGETS (space separated; default all of each),
#   HYDRA_FLOW_CONCURRENCY (1: Hydra's clients in authcode),
#   SMARTGATE_INFO (1), QUIET_WAIT (30), PRESIGN (1), LOAD_CLIENT (raw, the
#   default, or nethttp: the load generator's HTTP client, see
#   bench/cmd/load/send.go), LOAD_GOMAXPROCS (the load generator's
#   GOMAXPROCS; unset: Go's default, all cores), SMARTGATE_BIN (a smartgate
#   binary to run instead of building ./cmd/smartgate), HYDRA_DIR, RESULTS
#   (also append the JSON lines to this file).
# Needs: go, gcc (cgo, for Hydra's SQLite), node >= 20.19 and npm, jq, curl,
# python3 (to pick free ports), /proc (Linux). Targets only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
repo=$PWD
export PATH="$PATH:/usr/local/go/bin"

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-16}
POOL=${POOL:-10000}
MODES=${MODES:-"cc-secret cc-jwt-rs384 cc-jwt-es384 introspect authcode refresh"}
HYDRA_FLOW_CONCURRENCY=${HYDRA_FLOW_CONCURRENCY:-1}
# The browser-flow modes' public client; the URI is never dialled (the load
# generator stops at the redirect to it).
REDIRECT_URI=http://127.0.0.1/callback
if [ "${SMARTGATE_INFO:-1}" = 1 ]; then
  TARGETS=${TARGETS:-"smartgate smartgate-info hydra oidc-provider"}
else
  TARGETS=${TARGETS:-"smartgate hydra oidc-provider"}
fi
HYDRA_VERSION=v2.3.0
HYDRA_DIR=${HYDRA_DIR:-$HOME/.cache/smartgate-bench/hydra}
RESULTS=${RESULTS:-}
PRESIGN=${PRESIGN:-1}
deadline=$((SECONDS + 2700)) # never more than 45 minutes

die() { echo "bench/peers.sh: $*" >&2; exit 1; }
for tool in go gcc node npm jq curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
[ -r /proc/self/stat ] || die "/proc is needed to read server CPU time"

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    # bounded: SIGKILL whatever has not stopped after ~5 s
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_ready FILE PID: the URL printed in "... is ready at URL ..." (30 s max).
wait_ready() {
  local u
  for _ in $(seq 300); do
    u=$(sed -n 's/.* is ready at \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$1" | head -n1)
    if [ -n "$u" ]; then echo "$u"; return 0; fi
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; die "server $2 exited before it was ready"; }
    sleep 0.1
  done
  die "no ready line in $1 after 30 s"
}

echo "== machine"
echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(go version); node $(node --version); $(gcc --version | head -n1)"
echo "smartgate: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"

echo "== build"
if [ -n "${SMARTGATE_BIN:-}" ]; then
  # A binary built elsewhere, e.g. from a clean export of one commit while
  # this checkout holds unfinished work: `git archive C | tar -x -C DIR`.
  cp "$SMARTGATE_BIN" "$tmp/smartgate"
  echo "smartgate binary: $SMARTGATE_BIN ($("$tmp/smartgate" version 2>/dev/null | head -n1))"
else
  go build -o "$tmp/smartgate" ./cmd/smartgate
fi
go build -o "$tmp/load" ./bench/cmd/load
load=$tmp/load

# Hydra: go get -tool in a scratch module outside the repo, with the replace
# of github.com/gobuffalo/pop/v6 that hydra's own go.mod carries (a
# dependency's replace lines do not apply to the module that requires it),
# cgo for its SQLite driver. Cached in HYDRA_DIR; any failure stops the run.
build_hydra() {
  mkdir -p "$HYDRA_DIR"
  if [ -x "$HYDRA_DIR/hydra" ] && [ "$(cat "$HYDRA_DIR/hydra.version" 2>/dev/null)" = "$HYDRA_VERSION" ]; then
    echo "hydra $HYDRA_VERSION: cached in $HYDRA_DIR"
    return 0
  fi
  echo "hydra $HYDRA_VERSION: building in $HYDRA_DIR (about 3 minutes on 2 cores; cached afterwards)"
  local start=$SECONDS
  (
    set -euo pipefail
    cd "$HYDRA_DIR"
    rm -f go.mod go.sum hydra hydra.version
    go mod init scratch >/dev/null 2>&1
    gomod=$(go mod download -json "github.com/ory/hydra/v2@$HYDRA_VERSION" | jq -r .GoMod)
    [ -f "$gomod" ] || { echo "no go.mod for hydra $HYDRA_VERSION in the module cache" >&2; exit 1; }
    line=$(grep -E '^replace github\.com/gobuffalo/pop/v6 => ' "$gomod" | head -n1)
    [ -n "$line" ] || { echo "hydra's go.mod has no replace line for github.com/gobuffalo/pop/v6" >&2; exit 1; }
    read -r _ old _ new ver <<<"$line"
    go mod edit -replace "$old=$new@$ver"
    echo "replace $old => $new $ver"
    go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION"
    CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o hydra.new github.com/ory/hydra/v2
    mv hydra.new hydra
    echo "$HYDRA_VERSION" >hydra.version
  ) >"$tmp/hydra-build.log" 2>&1 || { tail -n 40 "$tmp/hydra-build.log" >&2; die "building Ory Hydra $HYDRA_VERSION failed (log above)"; }
  echo "hydra $HYDRA_VERSION: built in $((SECONDS - start)) s"
}
case " $TARGETS " in *" hydra "*) build_hydra ;; esac

peer=bench/peers/oidc-provider
case " $TARGETS " in *" oidc-provider "*)
  (cd "$peer" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $peer failed"
  echo "oidc-provider $(node -p "require('./$peer/node_modules/oidc-provider/package.json').version")"
  ;;
esac

echo "== client keys (the same for every server)"
"$load" keygen -alg RS384 -kid bench-rs384 -key "$tmp/rs384.pem" -jwks "$tmp/rs384.jwks"
"$load" keygen -alg ES384 -kid bench-es384 -key "$tmp/es384.pem" -jwks "$tmp/es384.jwks"

# Per target: process id, endpoints, and the clients of each mode; for
# authcode and refresh the authorization endpoint, the public app client and
# the load generator's flags for signing in (flow_args, word-split).
declare -A pid token_url introspect_url secret_id secret rs_id es_id intro_id intro_secret authorize_url app_id flow_args

start_smartgate() { # name, extra environment
  local name=$1 data=$tmp/$1-data; shift
  env SMARTGATE_RATE_LIMITS_ENABLED=false SMARTGATE_TOKENS_BACKEND_TOKEN_TTL=1h "$@" \
    "$tmp/smartgate" serve --dev --listen 127.0.0.1:0 --data-dir "$data" \
    >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pids+=($!)
  pid[$name]=$!
  local base
  base=$(wait_ready "$tmp/$name.out" $!)
  token_url[$name]=$base/oauth2/token
  introspect_url[$name]=$base/oauth2/introspect
  sg() { "$tmp/smartgate" client create --dev --data-dir "$data" --name bench --scope system/Patient.rs -o json "$@"; }
  local c
  c=$(sg --type confidential-symmetric) || die "smartgate client create failed"
  secret_id[$name]=$(jq -r .client_id <<<"$c"); secret[$name]=$(jq -r .client_secret <<<"$c")
  c=$(sg --type confidential-asymmetric --jwks-file "$tmp/rs384.jwks") || die "smartgate client create failed"
  rs_id[$name]=$(jq -r .client_id <<<"$c")
  c=$(sg --type confidential-asymmetric --jwks-file "$tmp/es384.jwks") || die "smartgate client create failed"
  es_id[$name]=$(jq -r .client_id <<<"$c")
  c=$(sg --type confidential-symmetric --introspect-any) || die "smartgate client create failed"
  intro_id[$name]=$(jq -r .client_id <<<"$c"); intro_secret[$name]=$(jq -r .client_secret <<<"$c")
  # The browser flow: a public app with user/ scopes (a practitioner needs
  # no patient picker), the demo practitioner of dev-users.json.
  c=$("$tmp/smartgate" client create --dev --data-dir "$data" --name bench-app --type public -o json --redirect-uri "$REDIRECT_URI" \
    --scope "openid offline_access user/Patient.rs" --grant-type authorization_code --grant-type refresh_token) || die "smartgate client create failed"
  app_id[$name]=$(jq -r .client_id <<<"$c")
  authorize_url[$name]=$base/oauth2/authorize
  local user pw
  user=$(jq -r '[.[] | select(.role == "practitioner")][0].username' "$data/dev-users.json")
  pw=$(jq -r '[.[] | select(.role == "practitioner")][0].password' "$data/dev-users.json")
  [ -n "$user" ] && [ "$user" != null ] || die "no demo practitioner in $data/dev-users.json"
  flow_args[$name]="-login smartgate -username $user -password $pw -scope openid+offline_access+user/Patient.rs -authorize-params aud=$base/fhir"
}

start_hydra() {
  local h=$HYDRA_DIR/hydra pub adm
  pub=$(free_port); adm=$(free_port)
  export DSN="sqlite://$tmp/hydra.sqlite?_fk=true"
  "$h" migrate sql -e --yes >"$tmp/hydra-migrate.log" 2>&1 || { cat "$tmp/hydra-migrate.log" >&2; die "hydra migrate sql failed"; }
  env SECRETS_SYSTEM="$(head -c 24 /dev/urandom | base64)" URLS_SELF_ISSUER="http://127.0.0.1:$pub" \
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$pub" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$adm" \
    URLS_LOGIN=http://127.0.0.1:9/login URLS_CONSENT=http://127.0.0.1:9/consent \
    LOG_LEVEL=warn SQA_OPT_OUT=true \
    "$h" serve all --dev --sqa-opt-out >"$tmp/hydra.out" 2>"$tmp/hydra.log" &
  pids+=($!)
  pid[hydra]=$!
  local ok=
  for _ in $(seq 300); do
    if curl -fsS "http://127.0.0.1:$adm/health/ready" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$pub/health/ready" >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "${pid[hydra]}" 2>/dev/null || { cat "$tmp/hydra.log" >&2; die "hydra exited before it was ready"; }
    sleep 0.1
  done
  [ -n "$ok" ] || { cat "$tmp/hydra.log" >&2; die "hydra not ready after 30 s"; }
  token_url[hydra]=http://127.0.0.1:$pub/oauth2/token
  introspect_url[hydra]=http://127.0.0.1:$adm/admin/oauth2/introspect # admin port: no client authentication
  local c
  c=$("$h" create oauth2-client -e "http://127.0.0.1:$adm" --format json --name bench \
    --grant-type client_credentials --response-type token --token-endpoint-auth-method client_secret_basic \
    --scope system/Patient.rs) || die "hydra create oauth2-client failed"
  secret_id[hydra]=$(jq -r .client_id <<<"$c"); secret[hydra]=$(jq -r .client_secret <<<"$c")
  for alg in rs384 es384; do
    jq -n --slurpfile k "$tmp/$alg.jwks" --arg alg "${alg^^}" '[{client_name: "bench", grant_types: ["client_credentials"],
      response_types: ["token"], token_endpoint_auth_method: "private_key_jwt", token_endpoint_auth_signing_alg: $alg,
      jwks: $k[0], scope: "system/Patient.rs"}]' >"$tmp/hydra-$alg.json"
    c=$("$h" import oauth2-client -e "http://127.0.0.1:$adm" --format json "$tmp/hydra-$alg.json") || die "hydra import oauth2-client failed"
    if [ $alg = rs384 ]; then rs_id[hydra]=$(jq -r .client_id <<<"$c"); else es_id[hydra]=$(jq -r .client_id <<<"$c"); fi
  done
  intro_id[hydra]=; intro_secret[hydra]=
  # The browser flow: its login and consent provider is the load generator
  # (URLS_LOGIN and URLS_CONSENT above are never dialled: the load
  # generator takes the challenge from the redirect and answers it over
  # the admin API).
  c=$("$h" create oauth2-client -e "http://127.0.0.1:$adm" --format json --name bench-app \
    --grant-type authorization_code,refresh_token --response-type code --scope openid,offline_access \
    --redirect-uri "$REDIRECT_URI" --token-endpoint-auth-method none) || die "hydra create oauth2-client failed"
  app_id[hydra]=$(jq -r .client_id <<<"$c")
  authorize_url[hydra]=http://127.0.0.1:$pub/oauth2/auth
  flow_args[hydra]="-login hydra -hydra-admin http://127.0.0.1:$adm -username bench-user"
}

start_oidc_provider() {
  local s1 s2
  s1=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 43)
  s2=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 43)
  jq -n --slurpfile rs "$tmp/rs384.jwks" --slurpfile es "$tmp/es384.jwks" --arg s1 "$s1" --arg s2 "$s2" '[
    {client_id: "bench-secret", client_secret: $s1, grant_types: ["client_credentials"], redirect_uris: [], response_types: [], scope: "system/Patient.rs"},
    {client_id: "bench-rs384", token_endpoint_auth_method: "private_key_jwt", token_endpoint_auth_signing_alg: "RS384", jwks: $rs[0],
     grant_types: ["client_credentials"], redirect_uris: [], response_types: [], scope: "system/Patient.rs"},
    {client_id: "bench-es384", token_endpoint_auth_method: "private_key_jwt", token_endpoint_auth_signing_alg: "ES384", jwks: $es[0],
     grant_types: ["client_credentials"], redirect_uris: [], response_types: [], scope: "system/Patient.rs"},
    {client_id: "bench-introspector", client_secret: $s2, grant_types: [], redirect_uris: [], response_types: []},
    {client_id: "bench-app", token_endpoint_auth_method: "none", grant_types: ["authorization_code", "refresh_token"],
     response_types: ["code"], redirect_uris: [$redirect], scope: "openid offline_access"}]' --arg redirect "$REDIRECT_URI" >"$tmp/oidc-clients.json"
  (cd "$peer" && BENCH_CLIENTS="$tmp/oidc-clients.json" NODE_ENV=production PORT=0 exec node server.mjs) \
    >"$tmp/oidc-provider.out" 2>"$tmp/oidc-provider.log" &
  pids+=($!)
  pid[oidc-provider]=$!
  local base
  base=$(wait_ready "$tmp/oidc-provider.out" $!)
  token_url[oidc-provider]=$base/token
  introspect_url[oidc-provider]=$base/token/introspection
  secret_id[oidc-provider]=bench-secret; secret[oidc-provider]=$s1
  rs_id[oidc-provider]=bench-rs384; es_id[oidc-provider]=bench-es384
  intro_id[oidc-provider]=bench-introspector; intro_secret[oidc-provider]=$s2
  app_id[oidc-provider]=bench-app
  authorize_url[oidc-provider]=$base/auth
  flow_args[oidc-provider]="-login oidc-provider"
}

echo "== start"
for t in $TARGETS; do
  case $t in
    smartgate) start_smartgate smartgate SMARTGATE_LOG_LEVEL=warn ;;
    smartgate-info) start_smartgate smartgate-info ;;
    hydra) start_hydra ;;
    oidc-provider) start_oidc_provider ;;
    *) die "unknown target $t" ;;
  esac
  echo "$t: pid ${pid[$t]}, ${token_url[$t]}"
done


# run TARGET MODE [extra load flags]: one load run; prints its JSON line.
run() {
  local t=$1 m=$2; shift 2
  local args=(-url "${token_url[$t]}" -target "$t" -mode "$m" -c "$CONCURRENCY" -pid "${pid[$t]}")
  case $m in
    cc-secret) args+=(-client-id "${secret_id[$t]}" -client-secret "${secret[$t]}") ;;
    cc-jwt-rs384) args+=(-client-id "${rs_id[$t]}" -key "$tmp/rs384.pem" -kid bench-rs384) ;;
    cc-jwt-es384) args+=(-client-id "${es_id[$t]}" -key "$tmp/es384.pem" -kid bench-es384) ;;
    introspect)
      args=(-url "${introspect_url[$t]}" -target "$t" -mode "$m" -c "$CONCURRENCY" -pid "${pid[$t]}" -tokens "$tmp/$t.pool")
      [ -z "${intro_id[$t]}" ] || args+=(-client-id "${intro_id[$t]}" -client-secret "${intro_secret[$t]}")
      ;;
    authcode | refresh)
      # shellcheck disable=SC2206 # flow_args holds flags, split on purpose
      args+=(-authorize-url "${authorize_url[$t]}" -client-id "${app_id[$t]}" -redirect-uri "$REDIRECT_URI" ${flow_args[$t]})
      # "+" stands for a space in the scope of flow_args (word-split above).
      for i in "${!args[@]}"; do [ "${args[$i]}" != -scope ] || args[i+1]=${args[i+1]//+/ }; done
      if [ "$t" = hydra ] && [ "$m" = authcode ]; then args+=(-c "$HYDRA_FLOW_CONCURRENCY"); fi
      ;;
  esac
  case $m in cc-jwt-*) [ "$PRESIGN" = 1 ] || args+=(-presign=false) ;; esac
  [ -z "${LOAD_CLIENT:-}" ] || args+=(-client "$LOAD_CLIENT")
  env ${LOAD_GOMAXPROCS:+GOMAXPROCS=$LOAD_GOMAXPROCS} timeout 900 "$load" "${args[@]}" "$@" 2>>"$tmp/load.err" || { tail -n 20 "$tmp/load.err" >&2; die "load against $t ($m) failed"; }
}

case " $MODES " in *" introspect "*)
  echo "== mint $POOL tokens per target for the introspection pool (cc-secret)"
  for t in $TARGETS; do
    line=$(run "$t" cc-secret -n "$POOL" -d 5m -warmup 0 -save-tokens "$tmp/$t.pool")
    got=$(sort -u "$tmp/$t.pool" | wc -l)
    [ "$got" -ge "$POOL" ] || die "$t: minted $got distinct tokens, not $POOL"
    echo "$t: $got distinct tokens ($(jq -r '.rps' <<<"$line") req/s while minting)"
  done
  ;;
esac

results=$tmp/results.jsonl
: >"$results"
echo "== runs: $ROUNDS rounds x ($MODES) x ($TARGETS), 1 s warm-up + ${SECONDS_PER_RUN} s each; assertions $([ "$PRESIGN" = 1 ] && echo "pre-signed before each window" || echo "signed per request inside the window"); load generator client ${LOAD_CLIENT:-raw}, GOMAXPROCS ${LOAD_GOMAXPROCS:-default}"
for round in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for t in $TARGETS; do
      [ $SECONDS -lt $deadline ] || die "over the 45-minute budget; lower ROUNDS or SECONDS_PER_RUN"
      wait_quiet
      line=$(run "$t" "$m" -d "${SECONDS_PER_RUN}s" -warmup 1s)
      line=$(jq -c --argjson r "$round" '. + {round: $r}' <<<"$line")
      echo "$line" | tee -a "$results"
      [ -z "$RESULTS" ] || echo "$line" >>"$RESULTS"
    done
  done
done
if [ -s "$tmp/load.err" ]; then
  echo "== load generator messages (first 20 lines)"
  head -n 20 "$tmp/load.err"
fi

storage() { # target mode
  case $2 in
    authcode | refresh)
      case $1 in
        smartgate*) echo "public client; codes, grants, refresh tokens SHA-256-hashed SQLite rows; access token ES256 JWT; id_token RS256 (RSA 2048)" ;;
        hydra) echo "public client; codes, tokens opaque HMAC, SQL rows; flow state in encrypted challenges; id_token RS256 (RSA 4096)" ;;
        oidc-provider) echo "public client; codes, tokens, sessions, grants in the in-memory adapter; id_token RS256 (RSA 2048)" ;;
      esac
      ;;
    *)
      case $1 in
        smartgate*) echo "secrets SHA-256; tokens stateless ES256 JWT (not stored)" ;;
        hydra) echo "secrets PBKDF2-SHA256 25k; tokens opaque HMAC, SQL row each" ;;
        oidc-provider) echo "secrets plaintext (constant-time compare); tokens opaque, in-memory adapter (LRU enlarged to 200k)" ;;
      esac
      ;;
  esac
}

echo
echo "== medians of $ROUNDS runs; $CONCURRENCY keep-alive clients on loopback; the load generator shares the $(nproc) cores"
printf '| %-12s | %-14s | %7s | %6s | %6s | %13s | %12s | %7s | %13s | %6s | %11s | %s |\n' mode target "req/s" "p50 ms" "p99 ms" "server us/req" "server cores" "RSS MB" "client us/req" errors "other cores" "secrets / tokens"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------- ---------------- --------- -------- -------- --------------- -------------- --------- --------------- -------- ------------- ------------------
summary=$tmp/summary.jsonl
jq -s -c "$jq_median"'
  group_by(.mode + " " + .target)[] | {mode: .[0].mode, target: .[0].target, rps: (map(.rps) | median), p50: (map(.p50_ms) | median),
  p99: (map(.p99_ms) | median), cpu: (map(.server_cpu_us_per_req) | median), cores: (map(.server_cpu_cores) | median),
  rss: (map(.server_rss_mb) | max), client: (map(.client_cpu_us_per_req) | median), errors: (map(.errors) | add), other: (map(.other_cpu_cores) | max),
  http: (map(.http_per_op // 0) | median), c: (map(.concurrency) | max)}' "$results" >"$summary"
for m in $MODES; do
  for t in $TARGETS; do
    jq -r --arg m "$m" --arg t "$t" 'select(.mode == $m and .target == $t) |
      [.mode, .target, (.rps | round), .p50, .p99, .cpu, .cores, .rss, .client, .errors, .other] | @tsv' "$summary" |
      while IFS=$'\t' read -r mm tt rps p50 p99 cpu cores rss cli errs oth; do
        printf '| %-12s | %-14s | %7s | %6s | %6s | %13s | %12s | %7s | %13s | %6s | %11s | %s |\n' "$mm" "$tt" "$rps" "$p50" "$p99" "$cpu" "$cores" "$rss" "$cli" "$errs" "$oth" "$(storage "$tt" "$mm")"
      done
  done
done
echo "(RSS: the largest VmRSS seen at the end of a measured window. other cores: the most CPU that anything"
echo " else on the machine used during one of the runs; above ~0.1 the run was disturbed.)"
flows=$(jq -s -r '[.[] | select(.mode == "authcode" or .mode == "refresh") | "\(.mode) \(.target): \(.http) HTTP requests per op, \(.c) clients"] | join("; ")' "$summary")
[ -z "$flows" ] || echo "(authcode and refresh: req/s, us/req and ms are per operation, a flow or a refresh. $flows)"
short=$(jq -s -r '[.[] | select(.ended_by == "count") | "\(.target) \(.mode) round \(.round): \(.seconds) s"] | join("; ")' "$results")
[ -z "$short" ] || echo "(windows that ended when their pre-signed assertions ran out, before ${SECONDS_PER_RUN} s: $short)"

# The targets of the token-endpoint issue, for the warn-level smartgate.
val() { jq -r --arg m "$1" --arg t "$2" --arg f "$3" 'select(.mode == $m and .target == $t) | .[$f]' "$summary"; }
has() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
echo
echo "== targets (smartgate = log level warn)"
verdict() { # description, awk condition over a b c d
  local desc=$1 cond=$2; shift 2
  if awk -v a="$1" -v b="${2:-0}" "BEGIN { exit !($cond) }"; then echo "MET     $desc"; else echo "MISSED  $desc"; fi
}
if has smartgate && has hydra && has oidc-provider; then
  for m in cc-secret introspect; do
    case " $MODES " in *" $m "*) ;; *) continue ;; esac
    hr=$(val "$m" hydra rps); orr=$(val "$m" oidc-provider rps)
    if awk -v a="$hr" -v b="$orr" 'BEGIN { exit !(a > b) }'; then fast=hydra; else fast=oidc-provider; fi
    sr=$(val "$m" smartgate rps); sc=$(val "$m" smartgate cpu); fr=$(val "$m" $fast rps); fc=$(val "$m" $fast cpu)
    verdict "$m: smartgate $sr req/s >= faster peer ($fast) $fr req/s (ratio $(awk -v a="$sr" -v b="$fr" 'BEGIN { printf "%.2f", a / b }'))" 'a >= b' "$sr" "$fr"
    if [ $m = cc-secret ]; then
      verdict "$m: smartgate $sc us/req <= 2/3 of $fast's $fc us/req (ratio $(awk -v a="$sc" -v b="$fc" 'BEGIN { printf "%.2f", a / b }'))" 'a <= b * 2 / 3' "$sc" "$fc"
      verdict "$m: smartgate $sr req/s >= 10x hydra $hr req/s (ratio $(awk -v a="$sr" -v b="$hr" 'BEGIN { printf "%.1f", a / b }'))" 'a >= 10 * b' "$sr" "$hr"
    else
      verdict "$m: smartgate $sc us/req <= $fast's $fc us/req (ratio $(awk -v a="$sc" -v b="$fc" 'BEGIN { printf "%.2f", a / b }'))" 'a <= b' "$sc" "$fc"
    fi
  done
  case " $MODES " in *" cc-jwt-rs384 "*)
    sr=$(val cc-jwt-rs384 smartgate rps); hr=$(val cc-jwt-rs384 hydra rps)
    verdict "cc-jwt-rs384: smartgate $sr req/s >= 5x hydra $hr req/s (ratio $(awk -v a="$sr" -v b="$hr" 'BEGIN { printf "%.1f", a / b }'))" 'a >= 5 * b' "$sr" "$hr"
    ;;
  esac
  # Issue 5, item 16: refresh throughput (no target for authcode; its
  # ratios are printed for the record).
  case " $MODES " in *" refresh "*)
    sr=$(val refresh smartgate rps); hr=$(val refresh hydra rps); orr=$(val refresh oidc-provider rps)
    sc=$(val refresh smartgate cpu); hc=$(val refresh hydra cpu); oc=$(val refresh oidc-provider cpu)
    verdict "refresh: smartgate $sr req/s >= 5x hydra $hr req/s (ratio $(awk -v a="$sr" -v b="$hr" 'BEGIN { printf "%.1f", a / b }'); server CPU $sc vs $hc us/req)" 'a >= 5 * b' "$sr" "$hr"
    verdict "refresh: smartgate $sr req/s >= oidc-provider $orr req/s (ratio $(awk -v a="$sr" -v b="$orr" 'BEGIN { printf "%.2f", a / b }'); server CPU $sc vs $oc us/req)" 'a >= b' "$sr" "$orr"
    ;;
  esac
  case " $MODES " in *" authcode "*)
    sr=$(val authcode smartgate rps); hr=$(val authcode hydra rps); orr=$(val authcode oidc-provider rps)
    sc=$(val authcode smartgate cpu); hc=$(val authcode hydra cpu); oc=$(val authcode oidc-provider cpu)
    echo "INFO    authcode: smartgate $sr flows/s, hydra $hr ($(awk -v a="$sr" -v b="$hr" 'BEGIN { printf "%.1f", a / b }')x; hydra with $HYDRA_FLOW_CONCURRENCY clients), oidc-provider $orr ($(awk -v a="$sr" -v b="$orr" 'BEGIN { printf "%.2f", a / b }')x); server CPU per flow $sc / $hc / $oc us"
    ;;
  esac
else
  echo "(the comparisons need the targets smartgate, hydra and oidc-provider)"
fi
if has smartgate; then
  for m in $MODES; do
    case $m in authcode | refresh) continue ;; esac # the p99 target is the token-endpoint issue's
    p=$(val "$m" smartgate p99)
    verdict "$m: smartgate p99 $p ms < 5 ms" 'a < 5' "$p"
  done
fi
for t in $TARGETS; do
  case $t in smartgate*)
    n=$(cat "$tmp/$t.log" | { grep -c '"level":"ERROR"' || true; })
    echo "$t log lines at level ERROR: $n"
    ;;
  esac
done
