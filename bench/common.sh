# Helpers shared by the benchmark scripts (sourced, not run).

# nginx, HAProxy, wrk, curl and pgrep, installed from Debian's packages when
# missing; sets NGINX and HAPROXY.
bench_tools() {
  local need=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  command -v pgrep >/dev/null || need+=(procps)
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
}

# A scratch directory, $work, removed at exit once every process in $pids is
# stopped; log() writes "NAME: ..." to stderr.
bench_workspace() {  # name
  BENCH_NAME=$1
  work=$(mktemp -d "/tmp/bgswitch-$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
log() { echo "${BENCH_NAME:-bench}: $*" >&2; }

# The nginx in the comparisons, proxying: two workers, no access log, long
# keep-alive, `upstream app` (127.0.0.1:PORT, 256 idle connections kept).
# The caller's http-level lines (more upstreams, its servers) come on stdin.
# Writes DIR/nginx.conf.
nginx_proxy_conf() {  # dir app-port < http-lines
  local dir=$1 port=$2
  mkdir -p "$dir"
  {
    echo "worker_processes 2;"
    echo "worker_rlimit_nofile 20000;"
    echo "daemon off;"
    echo "pid $dir/nginx.pid;"
    echo "error_log $dir/error.log warn;"
    echo "events { worker_connections 16384; }"
    echo "http {"
    echo "  access_log off;"
    echo "  keepalive_requests 1000000;"
    echo "  keepalive_timeout 300s;"
    echo "  upstream app { server 127.0.0.1:$port; keepalive 256; }"
    cat
    echo "}"
  } > "$dir/nginx.conf"
}

# The HAProxy in the comparisons: two threads, connections reused, long
# timeouts. It is one process, so its descriptors (two per proxied connection)
# share this machine's limit of 20,000: hence maxconn. Extra global lines are
# arguments; the caller's frontends and backends come on stdin.
haproxy_conf() {  # file [global-line...] < sections
  local file=$1; shift
  {
    echo "global"
    echo "  nbthread 2"
    echo "  maxconn 9950"
    local line
    for line in "$@"; do echo "  $line"; done
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 2s"
    echo "  timeout client 300s"
    echo "  timeout server 300s"
    echo "  timeout tunnel 300s"
    echo "  http-reuse always"
    cat
  } > "$file"
}

# The upstream every proxy talks to: one nginx worker answering a fixed body
# (and a newline) on each "port:body" given. Writes DIR/nginx.conf.
upstream_nginx_conf() {  # dir port:body...
  local dir=$1; shift
  mkdir -p "$dir"
  {
    echo "worker_processes 1;"
    echo "daemon off;"
    echo "pid $dir/nginx.pid;"
    echo "error_log $dir/error.log warn;"
    echo "events { worker_connections 8192; }"
    echo "http {"
    echo "  access_log off;"
    echo "  keepalive_requests 1000000;"
    local spec
    for spec in "$@"; do
      echo "  server { listen 127.0.0.1:${spec%%:*} reuseport; location / { return 200 \"${spec#*:}\\n\"; } }"
    done
    echo "}"
  } > "$dir/nginx.conf"
}

# Waits (10 s at most each) until every port answers HTTP; exits otherwise.
wait_answering() {  # port...
  local port
  for port in "$@"; do
    for _ in $(seq 100); do
      curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
      sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "bench: nothing answers on $port" >&2; exit 1; }
  done
}

to_ms() {  # wrk latency like 1.23ms / 850.00us / 1.02s -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
