#!/usr/bin/env bash
# bench/data.sh: the FHIR API, Bulk Data export and import on seeded data
# sets of 100k and 1M resources, SQLite and PostgreSQL, over real HTTP on
# loopback (issue 6, item 4). Never run by CI.
#
# Data sets. Each target is ENGINE-SIZE (sqlite-100k, sqlite-1m,
# postgres-100k, postgres-1m; 10k for a quick try): `smartgate seed
# --patients N --seed SEED` (about 162 resources a patient: 616 patients
# for 100k, 6160 for 1m) into a fresh data dir (SQLite) or a fresh
# PostgreSQL cluster that the script starts. The seeded data is cached in
# CACHE (~/.cache/smartgate-bench/data), keyed by engine, size, seed,
# schema version, SQLite's page size for a new file (when not 4096) and a
# hash of the generator's output (bench/cmd/pool
# -fingerprint), so it is made once; the seed's own throughput, time, CPU
# and largest RSS are kept beside it (meta.json) and printed by every run.
# Each run works on a copy of the cached set (a cp of the data dir, or of
# the cluster's directory), deleted afterwards, so that what the runs write
# (transactions, exports) never changes the cache.
#
# Per target the script copies the data set, starts the real `smartgate
# serve --dev` on it (rate limits off, log level warn), registers a
# backend-services client (system/*.cruds), and has bench/cmd/pool write
# the request files: POOL (10,000) distinct access tokens per mode, minted
# with the server's own signing key (system/*.rs for reads, patient/*.rs
# of a random patient for each search line, system/*.cruds for
# transactions), so that the verified-token cache holds a pool of tokens,
# not one. Then ROUNDS rounds; in each, every mode runs against every
# target in turn (interleaved, so that a noisy moment of the shared host
# hits them alike):
#
#   read         GET /fhir/{type}/{id}, READS (50,000) random resources
#   search       GET /fhir/Observation?patient=P&code=LOINC&date=geD under
#                a patient/*.rs token of P (the patient's Observations of
#                one code from a date; each line a different token)
#   include      GET /fhir/MedicationRequest?patient=P
#                &_include=MedicationRequest:medication
#                &_include=MedicationRequest:requester, patient/*.rs
#   transaction  POST /fhir a transaction Bundle of 100 entries (an
#                Encounter and 99 Observations referring to it by urn:uuid)
#                with TX_CONCURRENCY (4) clients
#   export       GET /fhir/$export with a client_credentials token
#                (system/*.rs): resources/s from the kick-off to the
#                completed manifest, then the download of every file (2 at a
#                time), checked line by line against the manifest's counts,
#                then DELETE
#   import       `smartgate import` of the files that export downloaded
#                into an empty data dir (SQLite) or database (PostgreSQL):
#                resources/s, CPU and largest RSS of the import process
#   seed         `smartgate seed` of the target's size into an empty data
#                dir or database (the cache build measures it too; this
#                measures it again, per round)
#
# An HTTP mode may carry its own number of clients: search@4 is the search
# mode with 4 clients (a lighter load, for its latency), recorded as
# "search@4".
#
#   wrk-read     the read and search modes' requests (the same request
#   wrk-search   files), sent by wrk instead of bench/cmd/load: a peer load
#                generator as a cross-check of ours (bench/wrk/targets.lua;
#                2 threads, CONCURRENCY connections, SECONDS_PER_RUN s after
#                a 1 s warm-up by bench/cmd/load, which also primes the
#                tokens in the first round). Server CPU and RSS are read
#                from /proc as for the other modes; wrk reports no body
#                checks, only statuses of 400 and up. Needs wrk (Debian:
#                apt-get install wrk); not in the default MODES.
#
# The HTTP modes are bench/cmd/load with CONCURRENCY (16) keep-alive
# clients, a 1 s warm-up and SECONDS_PER_RUN (10) s measured; they report
# req/s, p50/p99, server CPU per request (utime + stime from /proc/PID/stat)
# and the server's largest VmRSS sampled every 100 ms during the window.
# Before each run the script waits (at most QUIET_WAIT s) for the machine to
# be quiet, and records /proc/loadavg before and after. It prints every
# run as a JSON line, a table of medians, and the issue's targets (SQLite):
# reads >= 10,000 req/s with p99 < 5 ms; patient search p99 < 10 ms at 1M;
# export >= 50,000 resources/s; import and seed >= 5,000 resources/s;
# server (and import/seed process) RSS < 300 MB throughout.
#
# Usage: ./bench/data.sh
#        TARGETS="sqlite-1m" MODES="read search" ROUNDS=5 ./bench/data.sh
# The first run seeds the data sets (see docs/performance.md, "Data at
# scale", for how long that took here).
# Environment: TARGETS ("sqlite-100k sqlite-1m postgres-100k"), MODES ("read
#   search include transaction export import"), ROUNDS (3), SECONDS_PER_RUN
#   (10), CONCURRENCY (16), TX_CONCURRENCY (4), POOL (10000), READS (50000),
#   SEED (1), CACHE, BUILD (where data sets are seeded before they move
#   into CACHE; /var/tmp/smartgate-bench-build), WORK (where the copies go; default a new directory in
#   /var/tmp, which the postgres user can reach; KEEP_WORK=1 keeps them),
#   QUIET_WAIT (30),
#   SMARTGATE_BIN (a smartgate binary to run instead of building
#   ./cmd/smartgate), RESULTS (also append the JSON lines to this file),
#   SEED_ONLY=1 (only make the cached data sets), PROFILE=1 (record the
#   server with `perf record -g` during each HTTP run into WORK/perf-*.data,
#   kept).
# Needs: go, jq, curl, python3, /proc; wrk for the wrk-* modes; for PostgreSQL targets the server
# binaries (initdb, pg_ctl; Debian: apt-get install postgresql) and, as
# root, the postgres user. Targets only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
repo=$PWD
export PATH="$PATH:/usr/local/go/bin"

TARGETS=${TARGETS:-"sqlite-100k sqlite-1m postgres-100k"}
MODES=${MODES:-"read search include transaction export import"}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-16}
TX_CONCURRENCY=${TX_CONCURRENCY:-4}
POOL=${POOL:-10000}
READS=${READS:-50000}
SEED=${SEED:-1}
CACHE=${CACHE:-$HOME/.cache/smartgate-bench/data}
BUILD=${BUILD:-/var/tmp/smartgate-bench-build}
QUIET_WAIT=${QUIET_WAIT:-30}
RESULTS=${RESULTS:-}
SEED_ONLY=${SEED_ONLY:-0}
PROFILE=${PROFILE:-0}

die() { echo "bench/data.sh: $*" >&2; exit 1; }
for tool in go jq curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
case " $MODES " in *" wrk-"*) command -v wrk >/dev/null || die "the wrk-* modes need wrk (Debian: apt-get install wrk)" ;; esac
[ -r /proc/self/stat ] || die "/proc is needed to read server CPU time"

patients_for() { # size -> patients (about 162 resources each)
  case $1 in
    10k) echo 62 ;;
    100k) echo 616 ;;
    1m) echo 6160 ;;
    *) die "unknown size $1 (use 10k, 100k or 1m)" ;;
  esac
}
for t in $TARGETS; do
  case ${t%-*} in sqlite | postgres) ;; *) die "unknown target $t (ENGINE-SIZE, ENGINE sqlite or postgres)" ;; esac
  patients_for "${t#*-}" >/dev/null
done

tmp=$(mktemp -d)
WORK=${WORK:-$(mktemp -d /var/tmp/smartgate-data-bench.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
pids=()     # processes to stop at the end
clusters=() # PostgreSQL data directories to stop at the end
made=()     # directories in WORK to remove at the end
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for p in "${clusters[@]}"; do pg_stop "$p" || true; done
  rm -rf "$tmp"
  if [ -z "${KEEP_WORK:-}" ]; then
    for p in "${made[@]}"; do rm -rf "$p"; done
    rmdir "$WORK" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# PostgreSQL: a cluster per data set, run as the postgres user when root
# (initdb refuses root), with the settings of the tests' throwaway cluster
# (internal/pgtest: fsync, synchronous_commit and full_page_writes off).
pg_bin=
pg_find() {
  [ -z "$pg_bin" ] || return 0
  local d
  for d in "$(pg_config --bindir 2>/dev/null || true)" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then pg_bin=$d; return 0; fi
  done
  die "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_init() { # dir: a new cluster in dir/pgdata
  pg_find
  mkdir -p "$1"
  [ "$(id -u)" != 0 ] || chown postgres: "$1"
  as_pg "$pg_bin/initdb" -D "$1/pgdata" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$1/initdb.log" 2>&1 ||
    { cat "$1/initdb.log" >&2; die "initdb failed"; }
}
pg_start() { # dir port
  pg_find
  as_pg "$pg_bin/pg_ctl" start -w -t 300 -D "$1/pgdata" -l "$1/server.log" \
    -o "-h 127.0.0.1 -p $2 -k $1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null ||
    { tail -n 20 "$1/server.log" >&2; die "pg_ctl start in $1 failed"; }
  clusters+=("$1")
}
pg_stop() { # dir
  [ -d "$1/pgdata" ] || return 0
  as_pg "$pg_bin/pg_ctl" stop -m fast -w -t 120 -D "$1/pgdata" >/dev/null 2>&1 || true
}
pg_sql() { # port sql
  as_pg "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$2" >/dev/null
}
dsn() { echo "postgres://postgres@127.0.0.1:$1/$2?sslmode=disable"; } # port db

echo "== machine"
echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load: $(loadavg)"
echo "$(go version); disk free in $WORK: $(df -h --output=avail "$WORK" | tail -n1 | tr -d ' ')"
echo "smartgate: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"

echo "== build"
if [ -n "${SMARTGATE_BIN:-}" ]; then
  cp "$SMARTGATE_BIN" "$tmp/smartgate"
  echo "smartgate binary: $SMARTGATE_BIN"
else
  go build -o "$tmp/smartgate" ./cmd/smartgate
fi
go build -o "$tmp/load" ./bench/cmd/load
go build -o "$tmp/pool" ./bench/cmd/pool
sg=$tmp/smartgate load=$tmp/load pool=$tmp/pool
schema=$("$sg" migrate --dev --data-dir "$tmp/schema" -o json | jq -r .latest)
gen=$("$pool" -fingerprint -seed "$SEED")
# The page size of a new SQLite file is not a schema version, but a data
# set seeded with other pages measures something else: it is in the key.
page=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("pragma page_size").fetchone()[0])' "$tmp/schema/smartgate.db")
echo "schema version $schema; SQLite page size $page; generator $gen (seed $SEED)"

# seed_into DIR ENGINE PATIENTS [DSN]: `smartgate seed` into the data dir
# DIR (and the database DSN), watched; prints one JSON line.
seed_into() {
  local dir=$1 engine=$2 n=$3 db=${4:-} la0 la1
  local args=(seed --dev --data-dir "$dir/data" --patients "$n" --seed "$SEED" --progress lines -o json)
  [ -z "$db" ] || args+=(--database "$db")
  la0=$(loadavg)
  "$sg" "${args[@]}" >"$dir/seed.json" 2>"$dir/seed.log" &
  local p=$!
  "$load" watch -pid "$p" -label seed >"$dir/seed-watch.json"
  wait "$p" || { tail -n 20 "$dir/seed.log" >&2; die "smartgate seed into $dir failed (what it stored is kept there; running again resumes)"; }
  la1=$(loadavg)
  jq -c --slurpfile w "$dir/seed-watch.json" --arg e "$engine" --arg la0 "$la0" --arg la1 "$la1" --arg date "$(date -u +%FT%TZ)" \
    '{mode: "seed", engine: $e, patients, resources, created, seconds: $w[0].seconds, resources_per_s: (.resources / $w[0].seconds | round),
      cpu_seconds: $w[0].cpu_seconds, cores: $w[0].cores, cpu_us_per_resource: ($w[0].cpu_seconds * 1e6 / .resources * 10 | round / 10),
      rss_max_mb: $w[0].rss_max_mb, hwm_mb: $w[0].hwm_mb, other_cpu_cores: $w[0].other_cpu_cores, loadavg_before: $la0, loadavg_after: $la1, date: $date}' "$dir/seed.json"
}

# ensure_cache TARGET: the cached data set's directory, made if missing.
cache_dir() {
  case $1 in
    sqlite-*) [ "$page" = 4096 ] && echo "$CACHE/$1-s$SEED-v$schema-g$gen" || echo "$CACHE/$1-s$SEED-v$schema-p$page-g$gen" ;;
    *) echo "$CACHE/$1-s$SEED-v$schema-g$gen" ;;
  esac
}
ensure_cache() {
  local t=$1 engine=${1%-*} size=${1#*-} dir b n
  dir=$(cache_dir "$t")
  if [ -f "$dir/meta.json" ]; then return 0; fi
  n=$(patients_for "$size")
  # The build happens in BUILD (which the postgres user can reach) and is
  # moved into the cache when complete. A build that failed is kept:
  # seeding again completes it (what was committed stays; a stored
  # resource is left alone), and its meta.json then says "resumed".
  mkdir -p "$BUILD" "$CACHE"
  chmod 755 "$BUILD"
  b=$BUILD/$(basename "$dir")
  local resumed=false
  if [ -d "$b" ]; then
    resumed=true
    echo "$t: resuming the failed build in $b"
  fi
  echo "$t: seeding $n patients (seed $SEED) into $dir; progress in $b/seed.log"
  mkdir -p "$b"
  chmod 755 "$b"
  if [ "$engine" = postgres ]; then
    local port
    [ -d "$b/pgdata" ] || pg_init "$b"
    port=$(free_port)
    pg_start "$b" "$port"
    [ "$resumed" = true ] || pg_sql "$port" "CREATE DATABASE smartgate"
    seed_into "$b" "$engine" "$n" "$(dsn "$port" smartgate)" >"$b/meta.json"
    # Planner statistics, as autovacuum would gather within a minute of
    # the load: without them a patient's search was planned from the code
    # index over every patient (1.1 s at 10k resources instead of ms).
    as_pg "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d smartgate -c "VACUUM ANALYZE" >/dev/null
    pg_stop "$b"
  else
    seed_into "$b" "$engine" "$n" >"$b/meta.json"
  fi
  jq -c --arg du "$(du -sm "$b" | cut -f1)" --argjson resumed "$resumed" '. + {disk_mb: ($du | tonumber), resumed: $resumed}' "$b/meta.json" >"$b/meta.tmp" && mv "$b/meta.tmp" "$b/meta.json"
  rm -rf "$dir"
  mv "$b" "$dir"
  echo "$t: $(cat "$dir/meta.json")"
}

echo "== data sets (cache: $CACHE)"
for t in $TARGETS; do
  ensure_cache "$t"
  echo "$t: $(jq -c '{patients, resources, seed_resources_per_s: .resources_per_s, seconds, rss_max_mb, disk_mb, loadavg_before, date}' "$(cache_dir "$t")/meta.json")"
done
[ "$SEED_ONLY" != 1 ] || exit 0

declare -A pid base port wdir dbflag cid csecret
start_target() {
  local t=$1 engine=${1%-*} dir w
  dir=$(cache_dir "$t")
  w=$WORK/$t
  rm -rf "$w"
  mkdir -p "$w"
  made+=("$w")
  chmod 755 "$w"
  wdir[$t]=$w
  local need have
  need=$(du -sm "$dir" | cut -f1)
  have=$(df -m --output=avail "$WORK" | tail -n1 | tr -d ' ')
  [ "$have" -gt $((need * 2)) ] || die "$t: copying the data set needs about $((need * 2)) MB in $WORK, $have MB free"
  cp -a "$dir/data" "$w/data"
  dbflag[$t]=
  if [ "$engine" = postgres ]; then
    cp -a "$dir/pgdata" "$w/pgdata"
    [ "$(id -u)" != 0 ] || chown postgres: "$w"
    port[$t]=$(free_port)
    pg_start "$w" "${port[$t]}"
    dbflag[$t]=$(dsn "${port[$t]}" smartgate)
  fi
  local db=()
  [ -z "${dbflag[$t]}" ] || db=(--database "${dbflag[$t]}")
  env SMARTGATE_RATE_LIMITS_ENABLED=false SMARTGATE_LOG_LEVEL=warn SMARTGATE_TOKENS_BACKEND_TOKEN_TTL=1h \
    "$sg" serve --dev --listen 127.0.0.1:0 --data-dir "$w/data" "${db[@]}" >"$w/serve.out" 2>"$w/serve.log" &
  pids+=($!)
  pid[$t]=$!
  local u=
  for _ in $(seq 600); do
    u=$(sed -n 's/.* is ready at \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$w/serve.out" | head -n1)
    [ -z "$u" ] || break
    kill -0 "${pid[$t]}" 2>/dev/null || { cat "$w/serve.log" >&2; die "$t: smartgate serve exited"; }
    sleep 0.1
  done
  [ -n "$u" ] || die "$t: smartgate serve not ready after 60 s"
  base[$t]=$u
  local c
  c=$("$sg" client create --dev --data-dir "$w/data" "${db[@]}" --name bench-data --type confidential-symmetric \
    --scope "system/*.cruds" -o json) || die "$t: smartgate client create failed"
  cid[$t]=$(jq -r .client_id <<<"$c")
  csecret[$t]=$(jq -r .client_secret <<<"$c")
  local pargs=(-data-dir "$w/data" -issuer "$u" -patients "$(jq -r .patients "$dir/meta.json")" -seed "$SEED"
    -client-id "${cid[$t]}" -out "$w/pool" -tokens "$POOL" -reads "$READS")
  [ -z "${dbflag[$t]}" ] || pargs+=(-database "${dbflag[$t]}")
  "$pool" "${pargs[@]}" || die "$t: bench/cmd/pool failed"
  # The export's token comes from the token endpoint, as a Bulk Data
  # client's would.
  curl -fsS -u "${cid[$t]}:${csecret[$t]}" "$u/oauth2/token" -d grant_type=client_credentials --data-urlencode 'scope=system/*.rs' |
    jq -r .access_token >"$w/export.token"
  [ -s "$w/export.token" ] || die "$t: no export token"
  echo "$t: pid ${pid[$t]}, $u, $(jq -r .resources "$dir/meta.json") resources seeded, RSS after start $(awk '/VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/${pid[$t]}/status")"
}


# profile_start T NAME / profile_stop: perf record of the server (PROFILE=1).
perf_pid=
profile_start() {
  [ "$PROFILE" = 1 ] && command -v perf >/dev/null || return 0
  perf record -g -F 499 -p "${pid[$1]}" -o "$WORK/perf-$1-$2-r$round.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.3
}
profile_stop() {
  [ -n "$perf_pid" ] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
}

# run_http T MODE[@CLIENTS]: one bench/cmd/load run; prints its JSON line.
run_http() {
  local t=$1 m=${2%@*} c=$CONCURRENCY
  [ "$m" != transaction ] || c=$TX_CONCURRENCY
  [ "$2" = "$m" ] || c=${2#*@}
  # The first round sends each token of the pool once before its warm-up
  # (-prime): the server verifies it and keeps it in its verified-token
  # cache, as a long-running server does for its active clients; later
  # rounds find the pool there.
  local prime=()
  [ "$round" != 1 ] || prime=(-prime)
  profile_start "$t" "$2"
  timeout 600 "$load" -url "${base[$t]}" -target "$t" -mode "fhir-$m" -targets "${wdir[$t]}/pool/$m.targets" -c "$c" \
    -pid "${pid[$t]}" -d "${SECONDS_PER_RUN}s" -warmup 1s "${prime[@]}" 2>>"$tmp/load.err" || { tail -n 20 "$tmp/load.err" >&2; profile_stop; die "load against $t ($m) failed"; }
  profile_stop
}

# run_wrk T wrk-MODE[@CLIENTS]: the mode's requests sent by wrk; prints a
# JSON line with bench/cmd/load's field names.
run_wrk() {
  local t=$1 m=${2%@*} c=$CONCURRENCY
  m=${m#wrk-}
  [ "$2" = "${2%@*}" ] || c=${2#*@}
  local prime=()
  [ "$round" != 1 ] || prime=(-prime)
  # The warm-up (and in the first round the tokens' priming), by load.
  timeout 600 "$load" -url "${base[$t]}" -target "$t" -mode "fhir-$m" -targets "${wdir[$t]}/pool/$m.targets" -c "$c" \
    -pid "${pid[$t]}" -d 1s -warmup 0s "${prime[@]}" >/dev/null 2>>"$tmp/load.err" || { tail -n 20 "$tmp/load.err" >&2; die "wrk warm-up against $t ($m) failed"; }
  # The server's CPU, largest RSS and the rest of the machine's CPU while
  # wrk runs, by load watch; wrk's own CPU (user and system seconds) by
  # bash's time keyword.
  profile_start "$t" "$2"
  ( TIMEFORMAT='%U %S'
    { time TARGETS="${wdir[$t]}/pool/$m.targets" wrk -t2 -c"$c" -d"${SECONDS_PER_RUN}s" -s bench/wrk/targets.lua "${base[$t]}" >"$tmp/wrk.out"; } 2>"$tmp/wrk-time" ) &
  local wp=$!
  "$load" watch -pid "${pid[$t]}" -while "$wp" -label wrk >"$tmp/wrk-watch.json"
  wait "$wp" || { profile_stop; die "wrk against $t ($m) failed: $(cat "$tmp/wrk.out" "$tmp/wrk-time")"; }
  profile_stop
  sed -n 's/^WRK //p' "$tmp/wrk.out" | jq -c --arg t "$t" --arg m "fhir-$m" --argjson c "$c" --slurpfile w "$tmp/wrk-watch.json" \
    --argjson wcpu "$(awk 'END { print $1 + $2 }' "$tmp/wrk-time")" \
    '{target: $t, loadgen: "wrk", mode_run: $m, concurrency: $c} + . +
     {server_cpu_us_per_req: ($w[0].cpu_seconds * 1e6 / .requests * 10 | round / 10), server_cpu_cores: ($w[0].cpu_seconds / .seconds * 100 | round / 100),
      server_rss_max_mb: $w[0].rss_max_mb, client_cpu_us_per_req: ($wcpu * 1e6 / .requests * 10 | round / 10),
      other_cpu_cores: ([0, $w[0].other_cpu_cores - $wcpu / $w[0].seconds] | max * 100 | round / 100)}'
}

# run_export T: one export; its files go to WORK/T/export for import.
run_export() {
  local t=$1
  rm -rf "${wdir[$t]}/export"
  profile_start "$t" export
  timeout 3600 "$load" -url "${base[$t]}" -target "$t" -mode export -export-token-file "${wdir[$t]}/export.token" -c 2 \
    -pid "${pid[$t]}" -save-dir "${wdir[$t]}/export" 2>>"$tmp/load.err" || { tail -n 20 "$tmp/load.err" >&2; profile_stop; die "export from $t failed"; }
  profile_stop
}

# run_import T ROUND: import the exported files into an empty store.
run_import() {
  local t=$1 r=$2 engine=${1%-*} w=${wdir[$1]} d db=() files
  if ! ls "$w"/export/*.ndjson >/dev/null 2>&1; then
    run_export "$t" >/dev/null # files to import; not a measured run
  fi
  mapfile -t files < <(ls "$w"/export/*.ndjson | sort -V) # N.Type.ndjson, in the manifest's order
  d=$w/import-$r
  rm -rf "$d"
  mkdir -p "$d"
  if [ "$engine" = postgres ]; then
    pg_sql "${port[$t]}" "CREATE DATABASE import_$r"
    db=(--database "$(dsn "${port[$t]}" "import_$r")")
  fi
  "$sg" import --dev --data-dir "$d/data" "${db[@]}" --progress none -o json "${files[@]}" >"$d/import.json" 2>"$d/import.log" &
  local p=$!
  "$load" watch -pid "$p" -label import >"$d/watch.json"
  wait "$p" || { tail -n 5 "$d/import.log" >&2; jq -c '{failed, files: [.files[] | select(.failed > 0 or .error) | {file, failed, error, first: .failures[0]}]}' "$d/import.json" >&2; die "import into $t failed"; }
  jq -c --slurpfile w "$d/watch.json" --arg t "$t" --argjson files "${#files[@]}" \
    '{target: $t, mode: "import", files: $files, resources: (.created + .updated + .unchanged), created, failed, seconds: $w[0].seconds,
      resources_per_s: ((.created + .updated + .unchanged) / $w[0].seconds | round), summary_per_s: (.per_second | round),
      cpu_seconds: $w[0].cpu_seconds, cores: $w[0].cores, cpu_us_per_resource: ($w[0].cpu_seconds * 1e6 / (.created + .updated + .unchanged) * 10 | round / 10),
      rss_max_mb: $w[0].rss_max_mb, hwm_mb: $w[0].hwm_mb, other_cpu_cores: $w[0].other_cpu_cores}' "$d/import.json"
  rm -rf "$d"
  [ "$engine" != postgres ] || pg_sql "${port[$t]}" "DROP DATABASE import_$r WITH (FORCE)"
}

# run_seed T ROUND: seed the target's size into an empty store.
run_seed() {
  local t=$1 r=$2 engine=${1%-*} d db=
  d=${wdir[$t]}/seed-$r
  rm -rf "$d"
  mkdir -p "$d"
  if [ "$engine" = postgres ]; then
    pg_sql "${port[$t]}" "CREATE DATABASE seed_$r"
    db=$(dsn "${port[$t]}" "seed_$r")
  fi
  seed_into "$d" "$engine" "$(patients_for "${t#*-}")" $db | jq -c --arg t "$t" '. + {target: $t}'
  rm -rf "$d"
  [ "$engine" != postgres ] || pg_sql "${port[$t]}" "DROP DATABASE seed_$r WITH (FORCE)"
}

echo "== start"
for t in $TARGETS; do start_target "$t"; done

results=$tmp/results.jsonl
: >"$results"
echo "== runs: $ROUNDS rounds x ($MODES) x ($TARGETS); HTTP modes: $CONCURRENCY clients (transaction $TX_CONCURRENCY), 1 s warm-up + ${SECONDS_PER_RUN} s"
for round in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for t in $TARGETS; do
      wait_quiet
      la0=$(loadavg)
      case $m in
        read | search | include | transaction | read@* | search@* | include@* | transaction@*) line=$(run_http "$t" "$m") ;;
        wrk-read | wrk-search | wrk-read@* | wrk-search@*) line=$(run_wrk "$t" "$m") ;;
        export) line=$(run_export "$t") ;;
        import) line=$(run_import "$t" "$round") ;;
        seed) line=$(run_seed "$t" "$round") ;;
        *) die "unknown mode $m" ;;
      esac
      line=$(jq -c --argjson r "$round" --arg la0 "$la0" --arg la1 "$(loadavg)" --arg m "$m" \
        --argjson res "$(jq .resources "$(cache_dir "$t")/meta.json")" \
        '. + {mode: $m, round: $r, dataset_resources: $res, loadavg_before: $la0, loadavg_after: $la1}' <<<"$line")
      echo "$line" | tee -a "$results"
      [ -z "$RESULTS" ] || echo "$line" >>"$RESULTS"
    done
  done
done
if [ -s "$tmp/load.err" ]; then
  echo "== load generator messages (first 20 lines)"
  head -n 20 "$tmp/load.err"
fi

echo
echo "== medians of $ROUNDS rounds (load average: 1-minute values before each run, min-max)"
jq -s -r "$jq_median"'
  def la: map(.loadavg_before | split(" ")[0] | tonumber) | "\(min)-\(max)";
  group_by(.target + " " + .mode)[] | . as $g | .[0] as $f |
  if ($f.mode | split("@")[0] | IN("read", "search", "include", "transaction", "wrk-read", "wrk-search")) then
    "| \($f.target) | \($f.mode) (\($f.concurrency) clients) | \(map(.rps) | median | round) req/s\(if $f.mode == "transaction" then " (\(map(.entries_per_s) | median | round) entries/s)" else "" end) | p50 \(map(.p50_ms) | median) ms | p99 \(map(.p99_ms) | median) ms | server \(map(.server_cpu_us_per_req) | median) us/req | RSS max \(map(.server_rss_max_mb) | max) MB | errors \(map(.errors) | add) | other cores \(map(.other_cpu_cores) | max) | load \($g | la) |"
  elif $f.mode == "export" then
    "| \($f.target) | export | \(map(.export_resources_per_s) | median | round) resources/s (\($f.resources) in \(map(.export_seconds) | median) s) | server \(map(.export_server_cpu_us_per_resource) | median) us/resource | download \(map(.download_mb_per_s) | median) MB/s, \(map(.download_resources_per_s) | median | round) resources/s | RSS max \(map(.server_rss_max_mb) | max) MB | errors \(map(.errors) | add) | load \($g | la) |"
  else
    "| \($f.target) | \($f.mode) | \(map(.resources_per_s) | median | round) resources/s (\($f.resources) in \(map(.seconds) | median) s) | \(map(.cpu_us_per_resource) | median) us CPU/resource, \(map(.cores) | median) cores | RSS max \(map(.rss_max_mb) | max) MB | load \($g | la) |"
  end' "$results"
for t in $TARGETS; do
  echo "| $t | seed (cache build) | $(jq -r '"\(.resources_per_s) resources/s (\(.resources) in \(.seconds) s) | \(.cpu_us_per_resource) us CPU/resource, \(.cores) cores | RSS max \(.rss_max_mb) MB | load \(.loadavg_before) | \(.date) |"' "$(cache_dir "$t")/meta.json")"
done

echo
echo "== targets (SQLite)"
verdict() { # description, awk condition over a (and b)
  if awk -v a="$2" -v b="${3:-0}" "BEGIN { exit !($1) }"; then echo "MET     $4"; else echo "MISSED  $4"; fi
}
med() { # target mode field
  jq -s -r --arg t "$1" --arg m "$2" --arg f "$3" '[.[] | select(.target == $t and .mode == $m) | .[$f]] | sort |
    if length == 0 then "" elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end' "$results"
}
for t in $TARGETS; do
  case $t in sqlite-*) ;; *) continue ;; esac
  v=$(med "$t" read rps); p=$(med "$t" read p99_ms)
  [ -z "$v" ] || verdict 'a >= 10000 && b < 5' "$v" "$p" "$t read: $v req/s >= 10,000 and p99 $p ms < 5 ms"
  v=$(med "$t" wrk-read rps); p=$(med "$t" wrk-read p99_ms)
  [ -z "$v" ] || verdict 'a >= 10000 && b < 5' "$v" "$p" "$t read, measured by wrk: $v req/s >= 10,000 and p99 $p ms < 5 ms"
  for m in $MODES; do
    case $m in search | search@* | wrk-search | wrk-search@*) ;; *) continue ;; esac
    p=$(med "$t" "$m" p99_ms)
    [ -z "$p" ] || verdict 'a < 10' "$p" 0 "$t patient search ($m): p99 $p ms < 10 ms$([ "$t" = sqlite-1m ] || echo ' (the target is for 1M)')"
  done
  v=$(med "$t" export export_resources_per_s)
  [ -z "$v" ] || verdict 'a >= 50000' "$v" 0 "$t export: $v resources/s >= 50,000"
  v=$(med "$t" import resources_per_s)
  [ -z "$v" ] || verdict 'a >= 5000' "$v" 0 "$t import: $v resources/s >= 5,000"
  # The cached set's build may be older than this code: say when it ran
  # (SEED rounds, MODES=seed, measure this code).
  v=$(jq -r .resources_per_s "$(cache_dir "$t")/meta.json")
  built=$(jq -r .date "$(cache_dir "$t")/meta.json")
  from=$(jq -r '.migrated_from_schema // empty' "$(cache_dir "$t")/meta.json")
  [ -z "$from" ] || built="$built, by the code of schema $from, migrated since; MODES=seed measures this code"
  verdict 'a >= 5000' "$v" 0 "$t seed (cache build of $built): $v resources/s >= 5,000"
  v=$(med "$t" seed resources_per_s)
  [ -z "$v" ] || verdict 'a >= 5000' "$v" 0 "$t seed (rounds): $v resources/s >= 5,000"
  v=$(jq -s -r --arg t "$t" '[.[] | select(.target == $t) | (.server_rss_max_mb // .rss_max_mb // 0)] | max' "$results")
  s=$(jq -r .rss_max_mb "$(cache_dir "$t")/meta.json")
  verdict 'a < 300 && b < 300' "$v" "$s" "$t RSS: server and import at most $v MB, seed $s MB (cache build of $built) < 300 MB"
done
for t in $TARGETS; do
  n=$(grep -c '"level":"ERROR"' "${wdir[$t]}/serve.log" || true)
  echo "$t server log lines at level ERROR: $n"
done
