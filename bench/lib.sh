# bench/lib.sh: helpers shared by bench/peers.sh and bench/data.sh (sourced).

# jq_median defines median for jq programs (jq "$jq_median ..."): the
# middle value, the mean of the two middle ones for an even count rounded
# to 3 decimals (not 141.10000000000002), null for none.
jq_median='def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 | . * 1000 | round / 1000 end;'

# free_port prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_quiet: before a run, wait (at most QUIET_WAIT s, default 30) until
# the machine's busy CPU, sampled over one second, is under 0.15 cores: the
# previous run's tail and anything else on the machine (a build, another
# session's tests) are done. A run that something disturbed anyway shows it
# in its other_cpu_cores. Says so on stderr when the machine stayed busy.
hz=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
wait_quiet() {
  local a b
  for _ in $(seq "${QUIET_WAIT:-30}"); do
    a=$(busy_ticks); sleep 1; b=$(busy_ticks)
    if [ $((100 * (b - a))) -lt $((15 * hz)) ]; then return 0; fi
  done
  echo "$(basename "$0"): the machine stayed busy for ${QUIET_WAIT:-30} s; running anyway (see other_cpu_cores)" >&2
}
