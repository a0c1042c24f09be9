#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan) and
# runs each for SECONDS (default 60) from its seed corpus. Exits 1 when a
# target finds a crash, a leak, a timeout or an out-of-memory; the input is
# kept in build/fuzz/artifacts/ (make it a unit test, then fix it).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     e.g. tests/fuzz/run.sh 3600 request
#
# New inputs the fuzzer finds go to build/fuzz/corpus/<target> (kept between
# runs); the seeds in tests/fuzz/corpus/ are only read.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request response ws_frame config admin_json state values)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz >/dev/null
mkdir -p build/fuzz/artifacts
status=0
summary=()
for t in "${targets[@]}"; do
  bin=build/fuzz/tests/fuzz/fuzz_$t
  corpus=build/fuzz/corpus/$t
  mkdir -p "$corpus"
  dict=()
  case "$t" in request | response) dict=(-dict=tests/fuzz/http.dict) ;; esac
  log=build/fuzz/$t.log
  echo "fuzz: $t for ${seconds}s"
  if "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
      "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    summary+=("$t: ${runs:-?} runs in ${seconds}s, corpus $(find "$corpus" -type f | wc -l) inputs")
  else
    status=1
    summary+=("$t: FAILED (see $log)")
    grep -E "ERROR|SUMMARY|Test unit written|request_fuzz|response_fuzz|ws_frame_fuzz" "$log" | head -20 || true
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
