#!/usr/bin/env bash
# Fleet mode at scale (SPEC section 12): N bgswitch instances (1 worker each)
# on this machine sharing one redis-server, switched 20 times through
# instances in turn, with Redis restarted empty halfway. Reports how long each
# instance took to apply a switch after its compare-and-set (every instance
# logs it against the commit time in the record; one machine, one clock), CPU
# and memory per idle instance, Redis operations per second, and whether any
# instance was left behind.
#
#   bench/fleet.sh            100 instances, 20 switches; writes bench/FLEET.md and
#                             the fleet section of bench/RESULTS.md (about 2 minutes)
#   bench/fleet.sh --quick    10 instances, 4 switches; writes bench/last_fleet.md
#
# Environment: INSTANCES, SWITCHES.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
  INSTANCES=${INSTANCES:-10}; SWITCHES=${SWITCHES:-4}; IDLE=3; OUT=bench/last_fleet.md
else
  INSTANCES=${INSTANCES:-100}; SWITCHES=${SWITCHES:-20}; IDLE=10; OUT=bench/FLEET.md
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v curl >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools curl >/dev/null
fi
cmake --preset release >/dev/null
cmake --build build/release -j2 --target bgswitch >/dev/null
BGS_BIN=$PWD/build/release/bgswitch

work=$(mktemp -d /tmp/bgswitch-fleet.XXXXXX)
pids=()
redis_pid=""
cleanup() {
  for p in "${pids[@]}" $redis_pid; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $redis_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "fleet-bench: $*" >&2; }

REDIS=25379; BLUE=25001; GREEN=25002; LISTEN0=23000; ADMIN0=24000
TOKEN=fleet-bench
auth=(-H "Authorization: Bearer $TOKEN")

start_redis() {
  redis-server --port $REDIS --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    > "$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p $REDIS ping >/dev/null 2>&1 && return; sleep 0.05; done
  log "redis-server did not start"; exit 1
}
stop_redis() { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""; }
redis_commands() { redis-cli -p $REDIS info stats | awk -F: '/^total_commands_processed/ { print $2 + 0 }'; }

start_redis
"$BGS_BIN" demo-upstream --color blue --listen 127.0.0.1:$BLUE >/dev/null 2>&1 & pids+=($!)
"$BGS_BIN" demo-upstream --color green --listen 127.0.0.1:$GREEN >/dev/null 2>&1 & pids+=($!)

log "starting $INSTANCES instances"
nodes=()
for i in $(seq "$INSTANCES"); do
  cat > "$work/n$i.yaml" <<CONF
listen: [{address: "127.0.0.1:$((LISTEN0 + i))"}]
admin: {address: "127.0.0.1:$((ADMIN0 + i))", token: "$TOKEN"}
colors:
  blue: {upstreams: ["127.0.0.1:$BLUE"]}
  green: {upstreams: ["127.0.0.1:$GREEN"]}
proxy: {workers: 1}
limits: {max_connections: 64}
switch: {drain_timeout: 1s}
state:
  file: $work/n$i.json
  backend: redis
  redis: {url: "redis://127.0.0.1:$REDIS", key: "bgswitch:bench", node: "n$i"}
log: {access: off}
CONF
  "$BGS_BIN" run --config "$work/n$i.yaml" > "$work/n$i.log" 2>&1 &
  pids+=($!); nodes+=($!)
done
live() { curl -sf "${auth[@]}" "http://127.0.0.1:$((ADMIN0 + 1))/v1/fleet" | grep -o '"live":true' | wc -l; }
for _ in $(seq 300); do [ "$(live 2>/dev/null || echo 0)" -ge "$INSTANCES" ] && break; sleep 0.1; done
[ "$(live)" -ge "$INSTANCES" ] || { log "only $(live) of $INSTANCES instances joined"; exit 1; }

# --- idle cost --------------------------------------------------------------------
ticks() { local t=0 p; for p in "${nodes[@]}"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo $t; }
log "idle for ${IDLE}s"
c0=$(redis_commands); t0=$(ticks); s0=$(date +%s.%N)
sleep "$IDLE"
c1=$(redis_commands); t1=$(ticks); s1=$(date +%s.%N)
HZ=$(getconf CLK_TCK)
CPU=$(awk -v a="$t0" -v b="$t1" -v s0="$s0" -v s1="$s1" -v n="$INSTANCES" -v hz="$HZ" \
  'BEGIN { printf "%.2f", 100 * (b - a) / hz / (s1 - s0) / n }')
OPS=$(awk -v a="$c0" -v b="$c1" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.0f", (b - a) / (s1 - s0) }')
RSS=$(for p in "${nodes[@]}"; do awk '/^VmRSS/ { print $2 }' "/proc/$p/status"; done |
      awk '{ s += $1 } END { printf "%.1f", s / NR / 1024 }')

# --- switches ---------------------------------------------------------------------
switch_through() {  # instance color -> "status lagging-count"
  local body
  body=$(curl -s -w ' %{http_code}' "${auth[@]}" -X POST \
    -d "{\"to\":\"$2\",\"wait_fleet\":\"5s\",\"reason\":\"fleet bench\"}" \
    "http://127.0.0.1:$((ADMIN0 + $1))/v1/switch")
  local code=${body##* } lagging
  lagging=$(printf '%s' "$body" | sed -n 's/.*"lagging":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c . || true)
  echo "$code $lagging"
}
color=blue; failed=0; lagged=0; restarted_at=$((SWITCHES / 2))
for k in $(seq "$SWITCHES"); do
  [ $color = blue ] && color=green || color=blue
  through=$(( (k - 1) % INSTANCES + 1 ))
  if [ "$k" -eq "$((restarted_at + 1))" ]; then
    log "restarting redis-server empty"
    stop_redis; start_redis
  fi
  result=""
  for _ in $(seq 100); do  # after the restart: until the fleet has re-seeded and reconnected
    result=$(switch_through "$through" $color)
    [ "${result%% *}" = 200 ] && break
    sleep 0.1
  done
  [ "${result%% *}" = 200 ] || { failed=$((failed + 1)); log "switch $k failed: $result"; continue; }
  lagged=$((lagged + ${result##* }))
done

# Every instance on the record's version: nobody left behind.
record=$(redis-cli -p $REDIS hget bgswitch:bench version)
behind=0
for i in $(seq "$INSTANCES"); do
  v=""
  for _ in $(seq 50); do
    v=$(curl -sf "${auth[@]}" "http://127.0.0.1:$((ADMIN0 + i))/v1/status" | sed -n 's/.*"version":\([0-9]*\).*/\1/p')
    [ "$v" = "$record" ] && break
    sleep 0.1
  done
  [ "$v" = "$record" ] || behind=$((behind + 1))
done

# Propagation: each instance's apply, after the commit, in ms.
cat "$work"/n*.log | sed -n 's/.*fleet: applied version [0-9]* (switch.*, \([0-9.]*\) ms after its commit.*/\1/p' \
  | sort -g > "$work/delays"
APPLIES=$(wc -l < "$work/delays")
pct() { awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.1f", a[i] }' "$work/delays"; }
P50=$(pct 50); P99=$(pct 99); MAX=$(pct 100)

{
  echo "## Fleet mode: $INSTANCES instances on one Redis"
  echo
  if [ $QUICK = 1 ]; then
    echo "**Quick mode: a small fleet, to keep the script working. These numbers mean little.**"
    echo
  fi
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/fleet.sh\` on $(nproc) cores:"
  echo "$INSTANCES \`bgswitch run\` instances (1 worker each) and one redis-server"
  echo "$(redis-server --version | awk '{ print $3 }' | sed 's/v=//') on this machine; $SWITCHES switches through"
  echo "instances in turn, each with \`wait_fleet: 5s\`; redis-server stopped and started"
  echo "empty before switch $((restarted_at + 1)) (the instances re-seed the record from the newest"
  echo "version any of them applied). Propagation is from the compare-and-set to each other"
  echo "instance's apply, as every instance logs it against the commit time in the record."
  echo
  echo "| measure | value |"
  echo "|---|---:|"
  echo "| propagation p50 | $P50 ms |"
  echo "| propagation p99 | $P99 ms |"
  echo "| propagation max | $MAX ms |"
  echo "| applies measured | $APPLIES |"
  echo "| switches failed | $failed of $SWITCHES |"
  echo "| instances lagging at wait_fleet's answer (sum over switches) | $lagged |"
  echo "| instances left behind at the end | $behind of $INSTANCES |"
  echo "| CPU per idle instance | $CPU % of a core |"
  echo "| memory (RSS) per idle instance | $RSS MiB |"
  echo "| Redis commands per second, fleet idle | $OPS |"
  echo
  echo "An idle instance wakes once a second: it reads the record's version (one HGET) and"
  echo "sends its heartbeat (SET with a TTL, SADD), so Redis sees about 3 commands per second"
  echo "per instance; the record itself is read only when its version moved."
} > "$OUT"

# The full run's table also goes into RESULTS.md, between its markers.
if [ $QUICK = 0 ] && [ -f bench/RESULTS.md ]; then
  awk -v table="$OUT" '
    /<!-- fleet:begin -->/ { skip = 1; next }
    /<!-- fleet:end -->/ { skip = 0; next }
    !skip { print }' bench/RESULTS.md > "$work/results"
  { cat "$work/results"; echo "<!-- fleet:begin -->"; echo; cat "$OUT"; echo "<!-- fleet:end -->"; } > bench/RESULTS.md
fi
cat "$OUT"
if [ "$failed" != 0 ] || [ "$behind" != 0 ]; then
  log "a switch failed or an instance was left behind"
  exit 1
fi
