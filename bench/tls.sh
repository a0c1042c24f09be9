#!/usr/bin/env bash
# TLS at the edge, side by side: bgswitch, nginx and HAProxy terminate TLS with
# the same ECDSA P-256 certificate (TLS 1.2 and 1.3, session resumption on)
# in front of the same upstream. Measured in alternating rounds:
#   - new TLS connections per second, full handshakes and resumed sessions
#     (openssl s_time, one client: a handshake's cost shows directly);
#   - keep-alive requests per second over TLS (wrk, 64 connections);
#   - memory per idle TLS keep-alive connection (bgs-bench hold-tls).
#
#   bench/tls.sh            writes bench/TLS.md and the TLS section of bench/RESULTS.md
#   bench/tls.sh --quick    seconds per phase; writes bench/last_tls.md
#
# Environment: ROUNDS (3), DURATION (10), IDLE (2000 connections).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
  ROUNDS=1; DURATION=2; IDLE=${IDLE:-200}; OUT=bench/last_tls.md
else
  ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; IDLE=${IDLE:-2000}; OUT=bench/TLS.md
fi

# shellcheck source=bench/common.sh
source bench/common.sh
bench_tools
command -v openssl >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl >/dev/null
}
cmake --preset release >/dev/null
cmake --build build/release -j2 --target bgswitch bgs-bench >/dev/null
BGS_BIN=build/release/bgswitch
BENCH=build/release/bench/bgs-bench

bench_workspace tls-bench

UP=18380; NGX=18381; HAP=18382; BGS=18383; BGS_ADMIN=18384
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/haproxy.pem"

upstream_nginx_conf "$work/up" "$UP:hello from upstream"
nginx_proxy_conf "$work/ngx" $UP <<CONF
  server {
    listen 127.0.0.1:$NGX ssl reuseport;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
CONF
haproxy_conf "$work/haproxy.cfg" "ssl-default-bind-options ssl-min-ver TLSv1.2" <<CONF
frontend fe
  bind 127.0.0.1:$HAP ssl crt $work/haproxy.pem alpn http/1.1
  default_backend app
backend app
  server up 127.0.0.1:$UP
CONF
cat > "$work/bgswitch.yaml" <<CONF
listen:
  - address: 127.0.0.1:$BGS
    tls: {certificates: [{cert: "$work/cert.pem", key: "$work/key.pem"}]}
admin: {address: "127.0.0.1:$BGS_ADMIN", token: bench-token}
colors:
  blue: {upstreams: ["127.0.0.1:$UP"]}
  green: {upstreams: ["127.0.0.1:$UP"]}
state: {file: "$work/state.json"}
proxy: {workers: 2}
limits: {max_connections: 20000}
timeouts: {idle: 300s}
log: {level: warn, access: off}
CONF

"$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)
wait_answering $UP

start_server() {  # name -> pid on stdout (the server's own output goes to a file)
  case $1 in
    nginx) "$NGINX" -c "$work/ngx/nginx.conf" -p "$work/ngx" >>"$work/server.log" 2>&1 & ;;
    haproxy) "$HAPROXY" -f "$work/haproxy.cfg" -q >>"$work/server.log" 2>&1 & ;;
    bgswitch) "$BGS_BIN" run --config "$work/bgswitch.yaml" >>"$work/server.log" 2>&1 & ;;
  esac
  echo $!
}
port_of() { case $1 in nginx) echo $NGX ;; haproxy) echo $HAP ;; bgswitch) echo $BGS ;; esac; }
wait_tls() {
  for _ in $(seq 100); do curl -skf -o /dev/null "https://127.0.0.1:$1/" && return; sleep 0.1; done
  log "nothing answers TLS on $1"; exit 1
}
rss_kib() {
  local total=0 p
  for p in "$@"; do total=$((total + $(awk '/VmRSS/ { print $2 }' /proc/"$p"/status))); done
  echo $total
}
s_time_rate() {  # port s_time-options... -> connections per (wall-clock) second
  local port=$1 t0 t1 n
  shift
  t0=$(date +%s.%N)
  n=$(openssl s_time -connect "127.0.0.1:$port" "$@" -time "$DURATION" 2>/dev/null |
      awk '/connections in [0-9.]+s;/ { print $1; exit }')
  t1=$(date +%s.%N)
  awk -v n="${n:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

declare -A R
for round in $(seq "$ROUNDS"); do
  for t in nginx haproxy bgswitch; do
    srv=$(start_server $t); pids+=("$srv")
    port=$(port_of $t)
    wait_tls "$port"
    R[$t,full]+=" $(s_time_rate "$port" -new)"
    # Resumption as s_time can do it: TLS 1.2 (it does not wait for TLS 1.3's tickets).
    R[$t,resumed]+=" $(s_time_rate "$port" -reuse -tls1_2)"
    rps=$(wrk -t2 -c64 -d"${DURATION}s" "https://127.0.0.1:$port/" 2>/dev/null | awk '/Requests\/sec/ { print $2 }')
    R[$t,rps]+=" ${rps:-0}"
    if [ "$round" = 1 ]; then
      ps="$srv $(pgrep -P "$srv" | tr '\n' ' ' || true)"
      # shellcheck disable=SC2086
      rss0=$(rss_kib $ps)
      "$BENCH" hold-tls --port "$port" --connections "$IDLE" --seconds 600 > "$work/hold.out" & hold=$!
      for _ in $(seq 600); do grep -q ready "$work/hold.out" 2>/dev/null && break; sleep 0.1; done
      sleep 2
      # shellcheck disable=SC2086
      rss1=$(rss_kib $ps)
      held=$(sed -n 's/^ready tls=\([0-9]*\).*/\1/p' "$work/hold.out")
      R[$t,idle]=$(awk -v a="$rss0" -v b="$rss1" -v n="$held" 'BEGIN { printf "%.2f", n ? (b - a) / n : 0 }')
      R[$t,held]=$held
      kill $hold 2>/dev/null || true; wait $hold 2>/dev/null || true
    fi
    log "round $round $t: full${R[$t,full]##* } resumed${R[$t,resumed]##* } rps ${R[$t,rps]##* }"
    kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true
  done
done

# shellcheck disable=SC2086
row() {
  local t=$1
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$(median ${R[$t,full]})" "$(median ${R[$t,resumed]})" \
    "$(median ${R[$t,rps]})" "${R[$t,idle]} (of ${R[$t,held]})"
}
# shellcheck disable=SC2086
ratio() { awk -v a="$(median ${R[bgswitch,$1]})" -v b="$(median ${R[$2,$1]})" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
{
  echo "## TLS at the edge"
  echo
  if [ $QUICK = 1 ]; then
    echo "**Quick mode: seconds per phase, to keep the script working. These numbers mean nothing.**"
    echo
  fi
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/tls.sh\` on $(nproc) cores, $(openssl version | awk '{ print $1, $2 }');"
  echo "the same ECDSA P-256 certificate, TLS 1.2 and 1.3, session resumption on, 2 workers or"
  echo "threads each, in front of the same nginx upstream. Medians of $ROUNDS alternating round(s)"
  echo "of ${DURATION} s. Handshakes: \`openssl s_time\` (one client, sequential: full TLS 1.3"
  echo "handshakes with \`-new\`; resumed TLS 1.2 sessions with \`-reuse -tls1_2\`, since s_time"
  echo "does not wait for TLS 1.3's tickets). Keep-alive: wrk, 64 connections, 2 threads."
  echo "Idle: server memory growth per TLS keep-alive connection after one request each."
  echo
  echo "| server | full handshakes/s | resumed/s | keep-alive requests/s | KiB per idle TLS connection |"
  echo "|---|---:|---:|---:|---:|"
  for t in nginx haproxy bgswitch; do row $t; done
  echo
  echo "bgswitch against nginx and HAProxy: full handshakes $(ratio full nginx)× and $(ratio full haproxy)×,"
  echo "resumed $(ratio resumed nginx)× and $(ratio resumed haproxy)×, keep-alive requests $(ratio rps nginx)× and $(ratio rps haproxy)×."
} > "$OUT"

if [ $QUICK = 0 ] && [ -f bench/RESULTS.md ]; then
  awk '/<!-- tls:begin -->/ { skip = 1; next } /<!-- tls:end -->/ { skip = 0; next } !skip { print }' \
    bench/RESULTS.md > "$work/results"
  { cat "$work/results"; echo "<!-- tls:begin -->"; echo; cat "$OUT"; echo "<!-- tls:end -->"; } > bench/RESULTS.md
fi
cat "$OUT"
