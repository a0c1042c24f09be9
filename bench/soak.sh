#!/usr/bin/env bash
# The soak: bgswitch under steady mixed traffic while everything around it
# changes and breaks, checked continuously.
#
#   bench/soak.sh              an hour; writes bench/SOAK.md
#   bench/soak.sh --quick      five minutes (CI); writes bench/last_soak.md
#   bench/soak.sh SECONDS      any length; writes bench/last_soak.md
#   SOAK_PORT=28300 bench/soak.sh   on other ports (18300 and up by default)
#
# Traffic (bgs-bench mix): keep-alive GETs, a connection per request, 16 KiB
# POSTs, WebSockets sending every 500 ms, SSE subscribers; every outcome is
# counted by class. And every 2 s, on the live color, a request its upstream
# answers with a reset mid-body (demo-upstream's /fault/reset-mid-body): the
# client must see it cut short (or a 502 when the reset overtook the head),
# and nothing else may notice. Meanwhile, on a timeline:
#   every 10 s  a switch to the other color
#   every 30 s  a reload (the file changed)
#   every 20 s  the idle color's upstream list is set through the API
#   twice in 90 s  an idle-color upstream is killed (-9) and restarted 3 s later
#   every 60 s  an idle-color upstream is stalled (SIGSTOP) for 6 s
# Faults come 5 s after a switch at the earliest: the idle color has then
# finished draining (3 s window), so they never hit a connection with traffic.
#   at half time the state file's filesystem (a 512 KiB tmpfs) is full for 15 s
# A switch refused because of a fault (412: its gate failed; 500: the state
# file could not be written) is the fault working, not a failure. Checks:
#   - no failed request, no WebSocket or SSE stream cut: every one that ended
#     got Close 1001 or its terminating chunk;
#   - RSS and open descriptors flat after the warm-up (the first quarter);
#   - the admin endpoint answers within 2 s and traffic flows every 10 s
#     (no thread stuck).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=3600
OUT=bench/SOAK.md
case "${1:-}" in
  --quick) DURATION=300; OUT=bench/last_soak.md ;;
  "") ;;
  *) DURATION=$1; OUT=bench/last_soak.md ;;
esac

cmake --preset release >/dev/null
cmake -S . -B build/release -DBGSWITCH_BENCH=ON >/dev/null
cmake --build build/release -j2 --target bgswitch bgs-bench >/dev/null
BIN=$(pwd)/build/release/bgswitch
BENCH=$(pwd)/build/release/bench/bgs-bench
command -v curl >/dev/null || { echo "soak: curl is needed (deploy/setup.sh installs it)" >&2; exit 2; }

# SOAK_PORT moves every port (the proxy, its admin, four upstreams) so that a
# long soak can run beside CI's short one.
PORT=${SOAK_PORT:-18300}; ADMIN=$((PORT + 1)); TOKEN=soak-token
declare -A UP=([blue1]=$((PORT + 10)) [blue2]=$((PORT + 11)) [green1]=$((PORT + 20)) [green2]=$((PORT + 21)))
declare -A UPPID=()

work=$(mktemp -d /tmp/bgswitch-soak.XXXXXX)
touch "$work/timeline"
pids=()
state_mounted=0
cleanup() {
  for p in "${pids[@]}" "${UPPID[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $state_mounted = 1 ]; then umount "$work/state" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# Timeline lines carry seconds since the traffic began, as the mix's own
# failure lines do, so that the report can set the two side by side.
now_ds() { local us=${EPOCHREALTIME/./}; echo $(((us - ${start_us:-$us}) / 100000)); }
stamp() { local ds; ds=$(now_ds); printf 'soak: [%4d.%ds]' $((ds / 10)) $((ds % 10)); }
log() {
  local line
  line="$(stamp) $*"
  echo "$line" >&2; echo "$line" >>"$work/timeline"
}

start_upstream() {  # name
  local name=$1
  "$BIN" demo-upstream --color "${name%[0-9]}" --listen "127.0.0.1:${UP[$name]}" \
    >>"$work/$name.log" 2>&1 &
  UPPID[$name]=$!
}
for n in "${!UP[@]}"; do start_upstream "$n"; done

# The state file on a small filesystem of its own, to fill it on purpose.
mkdir -p "$work/state"
fill_note="the state file's filesystem was filled for 15 s"
if mount -t tmpfs -o size=512k tmpfs "$work/state" 2>/dev/null; then
  state_mounted=1
else
  fill_note="not filled: no tmpfs could be mounted here (needs root)"
fi

write_config() {  # health interval
  cat > "$work/bgswitch.yaml" <<CONF
listen: [{address: "127.0.0.1:$PORT"}]
admin: {address: "127.0.0.1:$ADMIN", token: $TOKEN}
colors:
  blue: {upstreams: ["127.0.0.1:${UP[blue1]}", "127.0.0.1:${UP[blue2]}"]}
  green: {upstreams: ["127.0.0.1:${UP[green1]}", "127.0.0.1:${UP[green2]}"]}
health: {interval: $1, timeout: 1s}
switch: {min_healthy: 1, drain_timeout: 3s, close_spread: 1s}
timeouts: {connect: 1s, upstream_response: 5s}
state: {file: "$work/state/state.json"}
proxy: {workers: 2}
log: {level: warn, access: off}
CONF
}
write_config 1s
"$BIN" run --config "$work/bgswitch.yaml" 2>"$work/bgswitch.log" &
bgs=$!; pids+=("$bgs")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/healthz" && break; sleep 0.1; done

admin() {  # method path [body] -> prints the status code
  curl -s -o "$work/admin.out" -w '%{http_code}' --max-time 30 -X "$1" \
    -H "Authorization: Bearer $TOKEN" ${3:+-d "$3"} "http://127.0.0.1:$ADMIN$2" || echo 000
}
active() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/v1/status" |
  sed -n 's/.*"active":"\([a-z]*\)".*/\1/p'; }
other() { [ "$1" = blue ] && echo green || echo blue; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$bgs/status"; }
fds() { find "/proc/$bgs/fd" -mindepth 1 -maxdepth 1 | wc -l; }

start_us=${EPOCHREALTIME/./}
"$BENCH" mix --port $PORT --seconds "$DURATION" --keepalive 8 --oneshot 4 --posts 2 \
  --websockets 20 --sse 10 --resets 1 > "$work/mix.out" 2> >(tee "$work/mix.err" >&2) &
mix=$!; pids+=("$mix")

declare -A SW=()
samples=()
stuck=0
fill_start=$((DURATION / 2)); filled=0
warm_at=$((DURATION / 4)); warm_rss=""; warm_fds=""
killed=""; stalled=""

last=-1
while kill -0 $mix 2>/dev/null; do
  t=$(($(now_ds) / 10))
  if [ $t = $last ]; then sleep 0.2; continue; fi
  last=$t
  idle=$(other "$(active)")
  if [ $((t % 10)) = 0 ] && [ $t -gt 0 ]; then
    code=$(admin POST /v1/switch "{\"to\":\"$idle\",\"reason\":\"soak t=$t\"}")
    SW[$code]=$((${SW[$code]:-0} + 1))
    if [ "$code" = 200 ]; then echo "$(stamp) switch to $idle (done)" >>"$work/timeline"
    else log "switch to $idle: $code $(head -c 200 "$work/admin.out")"; fi
  fi
  if [ $((t % 30)) = 15 ]; then
    if [ $(((t / 30) % 2)) = 0 ]; then write_config 900ms; else write_config 1s; fi
    code=$(admin POST /v1/reload)
    [ "$code" = 200 ] || log "reload: $code $(head -c 200 "$work/admin.out")"
  fi
  idle=$(other "$(active)")  # after this second's switch: faults go to the color without traffic
  if [ $((t % 20)) = 5 ]; then
    if [ $(((t / 20) % 2)) = 0 ]; then
      list="[\"127.0.0.1:${UP[${idle}1]}\"]"
    else
      list="[\"127.0.0.1:${UP[${idle}1]}\",\"127.0.0.1:${UP[${idle}2]}\"]"
    fi
    code=$(admin PUT "/v1/colors/$idle/upstreams" "{\"upstreams\":$list,\"reason\":\"soak\"}")
    [ "$code" = 200 ] || log "upstreams of $idle: $code $(head -c 200 "$work/admin.out")"
  fi
  if [ $((t % 90)) = 25 ] || [ $((t % 90)) = 65 ]; then
    killed=${idle}2
    log "kill -9 $killed"
    kill -9 "${UPPID[$killed]}" 2>/dev/null || true
    wait "${UPPID[$killed]}" 2>/dev/null || true
  fi
  if { [ $((t % 90)) = 28 ] || [ $((t % 90)) = 68 ]; } && [ -n "$killed" ]; then
    log "restart $killed"; start_upstream "$killed"; killed=""
  fi
  if [ $((t % 60)) = 35 ]; then
    stalled=${idle}1
    log "stall $stalled"
    kill -STOP "${UPPID[$stalled]}" 2>/dev/null || true
  fi
  if [ $((t % 60)) = 41 ] && [ -n "$stalled" ]; then
    kill -CONT "${UPPID[$stalled]}" 2>/dev/null || true; stalled=""
  fi
  if [ $state_mounted = 1 ] && [ $t = $fill_start ]; then
    dd if=/dev/zero of="$work/state/fill" bs=4k 2>/dev/null || true
    filled=1; log "state filesystem full"
  fi
  if [ $filled = 1 ] && [ $t = $((fill_start + 15)) ]; then
    rm -f "$work/state/fill"; filled=0; log "state filesystem has room again"
  fi
  if [ $((t % 10)) = 9 ]; then
    if ! curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN/healthz"; then
      stuck=$((stuck + 1)); log "the admin endpoint did not answer within 2 s"
    fi
    samples+=("$t $(rss) $(fds)")
    if [ -z "$warm_rss" ] && [ $t -ge $warm_at ]; then warm_rss=$(rss); warm_fds=$(fds); fi
  fi
done
wait $mix || true
if [ -n "$stalled" ]; then kill -CONT "${UPPID[$stalled]}" 2>/dev/null || true; fi

# The mix's failure lines, each after the timeline lines of the 12 s before it.
near_failures() {  # timeline failures
  awk -F'[][]' '
    FNR == NR { tl_t[++n] = $2 + 0; tl[n] = $0; next }
    { t = $2 + 0
      for (i = 1; i <= n; i++) if (tl_t[i] >= t - 12 && tl_t[i] <= t && !shown[i]) { print tl[i]; shown[i] = 1 }
      print }' "$1" "$2"
}
total=$(grep '^total' "$work/mix.out" || echo total)
quiet=$(grep -c '^progress ok=0$' "$work/mix.out" || true)
kv() { echo "$total" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
sum_fail=0; fail_list=""
for pair in $total; do
  case "$pair" in
    fail_*=*|ws_cut=*|ws_closed_other=*|sse_cut=*)
      sum_fail=$((sum_fail + ${pair#*=})); fail_list="$fail_list $pair" ;;
  esac
done
end_rss=$(rss); end_fds=$(fds)
rss_ok=$(awk -v w="${warm_rss:-0}" -v e="$end_rss" 'BEGIN { print (e <= w * 1.10 + 4096) ? 1 : 0 }')
fds_ok=$([ "$end_fds" -le $((${warm_fds:-0} + 20)) ] && echo 1 || echo 0)
ok_total=0
for pair in $total; do case "$pair" in ok_*=*) ok_total=$((ok_total + ${pair#*=})) ;; esac; done

pass=1
[ $sum_fail = 0 ] || pass=0
[ "$rss_ok" = 1 ] && [ "$fds_ok" = 1 ] || pass=0
[ $stuck = 0 ] && [ "$quiet" = 0 ] || pass=0
[ "$(kv ws_closed_1001)" != "" ] || pass=0
reset_cut=$(kv fault_reset_cut_short); reset_502=$(kv fault_reset_502)
[ -n "$reset_cut$reset_502" ] || pass=0  # the fault must have happened

{
  echo "# bgswitch soak"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, ${DURATION}s: $([ $pass = 1 ] && echo PASSED || echo FAILED)."
  echo
  echo "| check | figure |"
  echo "|---|---|"
  echo "| requests and messages answered | $ok_total |"
  echo "| failed requests, cut WebSockets or streams | $sum_fail${fail_list:+ ($fail_list )} |"
  echo "| WebSockets closed with 1001 on switches | $(kv ws_closed_1001) (opened $(kv ws_opened)) |"
  echo "| SSE streams ended with their terminating chunk | $(kv sse_ended_clean) (opened $(kv sse_opened)) |"
  echo "| upstream resets mid-body: the client saw it cut short / a 502 | ${reset_cut:-0} / ${reset_502:-0} |"
  echo "| switches: done / refused by a gate / state file full | ${SW[200]:-0} / ${SW[412]:-0} / ${SW[500]:-0} (others: $(for k in "${!SW[@]}"; do case $k in 200|412|500) ;; *) printf '%s:%s ' "$k" "${SW[$k]}";; esac; done)) |"
  echo "| RSS after warm-up, at the end | ${warm_rss:-?} KiB, $end_rss KiB |"
  echo "| open descriptors after warm-up, at the end | ${warm_fds:-?}, $end_fds |"
  echo "| admin endpoint silent for 2 s / 10 s without traffic | $stuck / $quiet |"
  echo "| state file's filesystem | $fill_note |"
  echo
  echo "Every 10 s (seconds, RSS KiB, descriptors): $(printf '%s; ' "${samples[@]}")"
  echo
  echo "Counts: \`${total#total }\`"
  if [ -s "$work/mix.err" ]; then
    echo
    echo "Every failure, with the switches and faults of the 12 s before it (first 200 lines):"
    echo
    echo '```'
    near_failures "$work/timeline" "$work/mix.err" | head -200
    echo '```'
  fi
} > "$OUT"
cat "$OUT"
[ $pass = 1 ]
