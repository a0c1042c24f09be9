#!/usr/bin/env bash
# Sets up a Debian 12 machine for bgswitch, builds it, and runs what you ask for.
#
#   deploy/setup.sh demo        install what is missing, build, run `bgswitch demo`
#   deploy/setup.sh test        install what is missing, build, run the test suite
#   deploy/setup.sh test-asan   the same with AddressSanitizer + UBSan
#   deploy/setup.sh test-tsan   the tests where threads meet (workers, control thread,
#                               logger; not those driving the binary) under ThreadSanitizer
#   deploy/setup.sh fuzz [S]    build the libFuzzer targets (clang) and run each for S seconds (60)
#   deploy/setup.sh build       install what is missing and build (release)
#   deploy/setup.sh install     build, then install bgswitch into /usr/local/bin (and the
#                               example config into /usr/local/share/doc/bgswitch)
#   deploy/setup.sh deps        only install what is missing
#
# Extra arguments after `demo` go to `bgswitch demo` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libssl-dev libyaml-cpp-dev libspdlog-dev
  libgtest-dev libbenchmark-dev libcli11-dev
  curl shellcheck libhiredis-dev redis-server openssl
  chromium fonts-liberation fonts-dejavu-core
  clang libclang-rt-14-dev
)
# The on-call page's browser test runs on Node.js (any 18+ on the PATH will do).
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# playwright-core for tests/browser, pinned by its package-lock.json; it
# drives Debian's /usr/bin/chromium and downloads no browser of its own.
browser_deps() {
  [ -d tests/browser/node_modules/playwright-core ] && return
  echo "setup: installing playwright-core for the browser test"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
}

build() {
  local preset=$1
  cmake --preset "$preset" >/dev/null
  local start=$SECONDS
  cmake --build --preset "$preset"
  echo "setup: $preset build took $((SECONDS - start))s"
}

mode=${1:-build}
[ $# -gt 0 ] && shift
case "$mode" in
  deps) install_missing ;;
  build) install_missing; build release ;;
  demo)
    install_missing; build release
    echo "setup: the binary is $(pwd)/build/release/bgswitch (./deploy/setup.sh install puts it on the PATH)"
    exec ./build/release/bgswitch demo "$@" ;;
  install)
    install_missing; build release
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo cmake --install build/release
    echo "setup: installed $(command -v bgswitch || echo /usr/local/bin/bgswitch)" ;;
  test) install_missing; browser_deps; build release; ctest --preset release ;;
  test-asan) install_missing; browser_deps; build asan; ctest --preset asan ;;
  test-tsan) install_missing; build tsan; ctest --preset tsan ;;
  fuzz) install_missing; exec tests/fuzz/run.sh "$@" ;;
  *) echo "usage: deploy/setup.sh demo|test|test-asan|test-tsan|fuzz|build|install|deps" >&2; exit 2 ;;
esac
