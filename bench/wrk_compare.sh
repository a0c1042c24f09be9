#!/usr/bin/env bash
# Side-by-side load test: wrk against the upstream directly, nginx, HAProxy and
# bgswitch, all in front of the same upstream on loopback, in alternating
# rounds. Prints requests/s and p99 per target (median of the rounds) and the
# ratios. Writes the table to bench/last_run.md.
#
#   bench/wrk_compare.sh            3 rounds of 10 s, 64 connections
#   bench/wrk_compare.sh --quick    1 round of 2 s (keeps the script working; says nothing about speed)
#   ROUNDS=5 DURATION=15s CONNECTIONS=256 bench/wrk_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
if [ "${1:-}" = "--quick" ]; then ROUNDS=1; DURATION=2s; fi

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x build/release/bgswitch ] || ./deploy/setup.sh build >/dev/null

work=$(mktemp -d /tmp/bgswitch-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

UP=18180; NGX=18181; HAP=18182; BGS=18183

# The upstream: one nginx worker answering a small fixed body.
mkdir -p "$work/up" "$work/ngx"
cat > "$work/up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP reuseport; location / { return 200 "hello from upstream\n"; } }
}
CONF
# nginx as a reverse proxy, as a competent operator runs it on 2 cores.
cat > "$work/ngx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NGX reuseport;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAP
  default_backend app
backend app
  server up 127.0.0.1:$UP
CONF
cat > "$work/bgswitch.yaml" <<CONF
listen: [{address: "127.0.0.1:$BGS"}]
admin: {address: "127.0.0.1:0"}
colors:
  blue: {upstreams: ["127.0.0.1:$UP"]}
  green: {upstreams: ["127.0.0.1:$UP"]}
state: {file: "$work/state.json"}
proxy: {workers: 2}
log: {level: warn, access: off}
CONF

"$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)
"$NGINX" -c "$work/ngx/nginx.conf" -p "$work/ngx" & pids+=($!)
"$HAPROXY" -f "$work/haproxy.cfg" -q & pids+=($!)
build/release/bgswitch run --config "$work/bgswitch.yaml" & pids+=($!)

for port in $UP $NGX $HAP $BGS; do
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
done

declare -A rps p99
targets=(direct nginx haproxy bgswitch)
declare -A port=([direct]=$UP [nginx]=$NGX [haproxy]=$HAP [bgswitch]=$BGS)

to_ms() {  # wrk latency like 1.23ms / 850.00us / 1.02s -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for round in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:${port[$t]}/")
    r=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
    l=$(echo "$out" | awk '$1 == "99%" { print $2 }')
    rps[$t]="${rps[$t]:-} $r"
    p99[$t]="${p99[$t]:-} $(to_ms "$l")"
    echo "round $round  $t: $r req/s, p99 $l" >&2
  done
done

{
  echo "| target | requests/s | p99 (ms) | vs direct | vs nginx | vs haproxy |"
  echo "|---|---:|---:|---:|---:|---:|"
  declare -A med
  for t in "${targets[@]}"; do med[$t]=$(median ${rps[$t]}); done
  for t in "${targets[@]}"; do
    awk -v t="$t" -v r="${med[$t]}" -v l="$(median ${p99[$t]})" -v d="${med[direct]}" -v n="${med[nginx]}" -v h="${med[haproxy]}" \
      'BEGIN { printf "| %s | %.0f | %.2f | %.2f | %.2f | %.2f |\n", t, r, l, r / d, r / n, r / h }'
  done
  echo
  echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS round(s), medians; $(nproc) cores;" \
       "$("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$HAPROXY" -v | head -1 | awk '{print "HAProxy " $3}'), bgswitch $(build/release/bgswitch version | head -1 | awk '{print $2}')"
} | tee bench/last_run.md
