#!/usr/bin/env bash
# What a configuration reload and name re-resolution cost the request path,
# for bgswitch and, side by side, nginx (SIGHUP: new workers) and HAProxy
# (master-worker, SIGUSR2: a new worker). Keep-alive load from wrk; each
# server is measured without reloads and with one every second, in
# alternating rounds; bgswitch also with 100 names re-resolved every second.
#
#   bench/reload.sh            writes bench/RELOAD.md (about 8 minutes)
#   bench/reload.sh --quick    seconds per phase; writes bench/last_reload.md
#
# Environment: ROUNDS (3), DURATION (10s), CONNECTIONS (64).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
  ROUNDS=1; DURATION=3s; OUT=bench/last_reload.md
else
  ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10s}; OUT=bench/RELOAD.md
fi
CONNECTIONS=${CONNECTIONS:-64}

source bench/common.sh
bench_tools
cmake --preset release >/dev/null
cmake --build build/release -j2 --target bgswitch >/dev/null
BGS_BIN=build/release/bgswitch

bench_workspace reload-bench

UP=18280; NGX=18281; HAP=18282; BGS=18283; BGS_ADMIN=18284; NAMES=18285; NAMES_ADMIN=18286

upstream_nginx_conf "$work/up" "$UP:hello from upstream"
nginx_proxy_conf "$work/ngx" $UP <<CONF
  server {
    listen 127.0.0.1:$NGX reuseport;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
CONF
haproxy_conf "$work/haproxy.cfg" <<CONF
frontend fe
  bind 127.0.0.1:$HAP
  default_backend app
backend app
  server up 127.0.0.1:$UP
CONF
bgs_config() {  # port admin idle-timeout green-upstreams
  cat <<CONF
listen: [{address: "127.0.0.1:$1"}]
admin: {address: "127.0.0.1:$2", token: bench-token}
colors:
  blue: {upstreams: ["127.0.0.1:$UP"]}
  green: {upstreams: [$4]}
resolver: {refresh: 1s}
state: {file: "$work/state-$1.json"}
proxy: {workers: 2}
limits: {max_connections: 20000}
timeouts: {idle: $3}
log: {level: warn, access: off}
CONF
}
bgs_config $BGS $BGS_ADMIN 300s "\"127.0.0.1:$UP\"" > "$work/bgswitch.yaml"
# The idle color lists 100 names: each is asked every second (they do not
# resolve, so each answer is the resolver's worst case, a fresh query).
names=$(for i in $(seq 100); do printf '"app-%d.bench.invalid:80", ' "$i"; done)
bgs_config $NAMES $NAMES_ADMIN 300s "${names%, }" > "$work/bgswitch-names.yaml"

"$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)
"$NGINX" -c "$work/ngx/nginx.conf" -p "$work/ngx" & ngx_pid=$!; pids+=($ngx_pid)
"$HAPROXY" -W -f "$work/haproxy.cfg" -q & hap_pid=$!; pids+=($hap_pid)
"$BGS_BIN" run --config "$work/bgswitch.yaml" 2>"$work/bgswitch.log" & bgs_pid=$!; pids+=($bgs_pid)
"$BGS_BIN" run --config "$work/bgswitch-names.yaml" 2>"$work/names.log" & pids+=($!)
wait_answering $UP $NGX $HAP $BGS $NAMES

# One reload of `server`: bgswitch alternates its idle timeout, so that every
# reload changes something, and asks through the admin API.
flip=0
reload_once() {
  case $1 in
    nginx) kill -HUP "$ngx_pid" ;;
    haproxy) kill -USR2 "$hap_pid" ;;
    bgswitch)
      flip=$((1 - flip))
      bgs_config $BGS $BGS_ADMIN "$([ $flip = 1 ] && echo 299s || echo 300s)" "\"127.0.0.1:$UP\"" \
        > "$work/bgswitch.yaml"
      if curl -sf -o /dev/null -X POST -H "Authorization: Bearer bench-token" \
        "http://127.0.0.1:$BGS_ADMIN/v1/reload"; then
        echo ok >> "$work/reloads"
      else
        log "bgswitch reload failed"
      fi
      ;;
  esac
}

declare -A port=([nginx]=$NGX [haproxy]=$HAP [bgswitch]=$BGS [names]=$NAMES)
declare -A R
measure() {  # server label reloads(0|1)
  local t=$1 label=$2 reloads=$3 loop=""
  if [ "$reloads" = 1 ]; then
    ( while true; do sleep 1; reload_once "$t"; done ) & loop=$!
  fi
  local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:${port[$t]}/")
  [ -n "$loop" ] && { kill "$loop"; wait "$loop" 2>/dev/null || true; }
  local rps p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  errors=$(echo "$out" | awk '/Socket errors/ { gsub(",", ""); s += $4 + $6 + $8 + $10 } /Non-2xx/ { s += $NF } END { print s + 0 }')
  R[$label,rps]="${R[$label,rps]:-} $rps"
  R[$label,p99]="${R[$label,p99]:-} $p99"
  R[$label,err]="${R[$label,err]:-} $errors"
  log "$label: $rps req/s, p99 $p99 ms, errors $errors"
}
for round in $(seq "$ROUNDS"); do
  log "round $round"
  for t in nginx haproxy bgswitch; do
    measure "$t" "$t,none" 0
    measure "$t" "$t,reload" 1
  done
  measure bgswitch "bgswitch,quiet" 0
  measure names "names,resolving" 0
done
reloads=$(wc -l < "$work/reloads" 2>/dev/null || echo 0)

{
  echo "# Reloads and re-resolution under keep-alive load"
  echo
  echo "\`bench/reload.sh$([ $QUICK = 1 ] && echo " --quick")\`, $(date -u +%Y-%m-%d), $(nproc) cores;"
  echo "wrk -t2 -c$CONNECTIONS -d$DURATION per phase, $ROUNDS rounds, medians; phases alternate."
  echo "nginx reloads with SIGHUP (new workers), HAProxy in master-worker mode with SIGUSR2"
  echo "(a new worker), bgswitch through POST /v1/reload with a file whose timeouts.idle"
  echo "changes each time ($reloads reloads applied in all). Errors are wrk's socket errors"
  echo "(connections the server closed or reset) and non-2xx answers."
  echo
  echo "| server | requests/s, no reload | with a reload every second | ratio | p99 ms, no reload | with reloads | errors with reloads |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for t in nginx haproxy bgswitch; do
    a=$(median ${R[$t,none,rps]}); b=$(median ${R[$t,reload,rps]})
    awk -v t="$t" -v a="$a" -v b="$b" -v pa="$(median ${R[$t,none,p99]})" \
        -v pb="$(median ${R[$t,reload,p99]})" -v e="$(median ${R[$t,reload,err]})" \
      'BEGIN { printf "| %s | %.0f | %.0f | %.3f | %.2f | %.2f | %s |\n", t, a, b, b / a, pa, pb, e }'
  done
  echo
  echo "100 names re-resolved every second (resolver.refresh: 1s, off the workers) against"
  echo "the same proxy without them:"
  echo
  echo "| bgswitch | requests/s | p99 ms |"
  echo "|---|---:|---:|"
  echo "| no names | $(median ${R[bgswitch,quiet,rps]}) | $(median ${R[bgswitch,quiet,p99]}) |"
  echo "| 100 names every second | $(median ${R[names,resolving,rps]}) | $(median ${R[names,resolving,p99]}) |"
} > "$OUT"
cat "$OUT"
