#!/usr/bin/env bash
# A whole blue-green deploy through bgswitch, in one command:
#
#   start the idle color with the new image (START_CMD) -> point bgswitch at it
#   -> wait until it is healthy and its smoke URLs answer -> switch --dry-run
#   -> switch, and observe (bgswitch rolls back on its own if the new color
#   fails) -> after the drain window, stop the old color (STOP_CMD)
#
# Inputs are environment variables, each also an option (--image-tag v2 or
# --IMAGE_TAG v2):
#   IMAGE_TAG                 the version to deploy (required)
#   BGSWITCH_ADMIN            admin URL (default http://127.0.0.1:9901)
#   BGSWITCH_ADMIN_TOKEN      admin token, or BGSWITCH_ADMIN_TOKEN_FILE (--token-file)
#   BGSWITCH                  the bgswitch CLI (default: bgswitch on the PATH)
#   START_CMD, STOP_CMD       run through `sh -c` with COLOR and IMAGE_TAG exported
#                             (default: docker compose up -d app-$COLOR / stop app-$COLOR)
#   UPSTREAMS                 the new color's addresses, space-separated; {color}
#                             is replaced (default app-{color}:8080)
#   HEALTH_TIMEOUT            seconds for the new color to get healthy (default 120)
#   DRAIN_SECONDS             the old color's drain window (default 90)
#   OBSERVE_SECONDS           how long bgswitch watches the new color (default 180)
#   SMOKE_URLS                paths fetched from every new address (space-separated)
#   --dry-run                 print the plan and change nothing
#
# Exit codes: 0 deployed, 1 rolled back or refused, 2 usage or environment error.
set -uo pipefail

say() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
usage() { say "usage error: $*" >&2; echo "see the header of $0 for its inputs" >&2; exit 2; }

dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1; shift ;;
    --help|-h) sed -n '2,27p' "$0"; exit 0 ;;
    --token-file) [ $# -ge 2 ] || usage "--token-file needs a value"
      BGSWITCH_ADMIN_TOKEN_FILE=$2; shift 2 ;;
    --admin) [ $# -ge 2 ] || usage "--admin needs a value"
      BGSWITCH_ADMIN=$2; shift 2 ;;
    --*)
      [ $# -ge 2 ] || usage "$1 needs a value"
      name=$(printf '%s' "${1#--}" | tr 'a-z-' 'A-Z_')
      case $name in
        IMAGE_TAG|BGSWITCH_ADMIN|BGSWITCH_ADMIN_TOKEN|BGSWITCH_ADMIN_TOKEN_FILE|BGSWITCH|\
        START_CMD|STOP_CMD|UPSTREAMS|HEALTH_TIMEOUT|DRAIN_SECONDS|OBSERVE_SECONDS|SMOKE_URLS)
          printf -v "$name" '%s' "$2" ;;
        *) usage "unknown option $1" ;;
      esac
      shift 2 ;;
    *) usage "unexpected argument $1" ;;
  esac
done

: "${BGSWITCH_ADMIN:=http://127.0.0.1:9901}"
: "${BGSWITCH:=bgswitch}"
: "${START_CMD:=docker compose up -d app-\$COLOR}"
: "${STOP_CMD:=docker compose stop app-\$COLOR}"
: "${UPSTREAMS:=app-{color}:8080}"
: "${HEALTH_TIMEOUT:=120}"
: "${DRAIN_SECONDS:=90}"
: "${OBSERVE_SECONDS:=180}"
: "${SMOKE_URLS:=}"
[ -n "${IMAGE_TAG:-}" ] || usage "IMAGE_TAG is required"
for n in HEALTH_TIMEOUT DRAIN_SECONDS OBSERVE_SECONDS; do
  [[ ${!n} =~ ^[0-9]+$ ]] || usage "$n must be a whole number of seconds, not '${!n}'"
done
if [ -n "${BGSWITCH_ADMIN_TOKEN_FILE:-}" ]; then
  [ -r "$BGSWITCH_ADMIN_TOKEN_FILE" ] || usage "cannot read $BGSWITCH_ADMIN_TOKEN_FILE"
  BGSWITCH_ADMIN_TOKEN=$(tr -d '\r\n' < "$BGSWITCH_ADMIN_TOKEN_FILE")
fi
[ -n "${BGSWITCH_ADMIN_TOKEN:-}" ] || usage "BGSWITCH_ADMIN_TOKEN or BGSWITCH_ADMIN_TOKEN_FILE is required"
command -v "$BGSWITCH" >/dev/null 2>&1 || usage "the bgswitch CLI '$BGSWITCH' is not found"
export BGSWITCH_ADMIN BGSWITCH_ADMIN_TOKEN IMAGE_TAG

# --- where traffic is now ------------------------------------------------------
status=$("$BGSWITCH" status --json 2>&1) || { say "bgswitch status: $status" >&2; exit 2; }
active=$(printf '%s' "$status" | grep -o '"active":"[a-z]*"' | head -1 | cut -d'"' -f4)
case $active in
  blue) idle=green ;;
  green) idle=blue ;;
  *) say "cannot tell the active color from: $status" >&2; exit 2 ;;
esac
read -r -a addresses <<< "${UPSTREAMS//\{color\}/$idle}"
[ ${#addresses[@]} -gt 0 ] || usage "UPSTREAMS names no address"

say "deploying $IMAGE_TAG: $active serves now, $idle takes the new version"
if [ $dry_run = 1 ]; then
  cat <<PLAN
plan (--dry-run: nothing is changed):
  1. start $idle:          COLOR=$idle IMAGE_TAG=$IMAGE_TAG sh -c '$START_CMD'
  2. point bgswitch:       $BGSWITCH upstreams set $idle ${addresses[*]}
  3. wait for health:      up to ${HEALTH_TIMEOUT}s${SMOKE_URLS:+, then GET ${SMOKE_URLS} on each address}
  4. check:                $BGSWITCH switch $idle --dry-run
  5. switch and observe:   $BGSWITCH switch $idle --drain-timeout ${DRAIN_SECONDS}s --observe ${OBSERVE_SECONDS}s --wait
  6. after the drain:      COLOR=$active sh -c '$STOP_CMD' (${DRAIN_SECONDS}s after the switch)
PLAN
  exit 0
fi

# --- 1. start the new version as the idle color -------------------------------
say "starting $idle with $IMAGE_TAG: $START_CMD"
COLOR=$idle sh -c "$START_CMD" || fail "START_CMD failed for $idle (exit $?); traffic stays on $active"

# --- 2. point bgswitch at it ----------------------------------------------------
say "pointing $idle at ${addresses[*]}"
out=$("$BGSWITCH" upstreams set "$idle" "${addresses[@]}" --reason "deploy $IMAGE_TAG" 2>&1)
rc=$?
say "$out"
[ $rc = 0 ] || { [ $rc = 1 ] && fail "bgswitch refused the upstreams of $idle"; exit 2; }

# --- 3. wait until it is healthy (the health gate, fresh) and its smoke URLs answer
say "waiting up to ${HEALTH_TIMEOUT}s for $idle to be healthy"
deadline=$((SECONDS + HEALTH_TIMEOUT))
last=""
while :; do
  gate=$("$BGSWITCH" switch "$idle" --dry-run --json 2>&1)
  if printf '%s' "$gate" | grep -q '"result":"dry_run_passed"'; then
    break
  fi
  last=$(printf '%s' "$gate" | grep -o '"failure":"[^"]*"' | head -1 | cut -d'"' -f4)
  [ -n "$last" ] || last=$gate
  if [ $SECONDS -ge $deadline ]; then
    fail "$idle did not become healthy within ${HEALTH_TIMEOUT} s: last check: $last; traffic stays on $active"
  fi
  sleep 2
done
say "$idle is healthy"
for path in $SMOKE_URLS; do
  for address in "${addresses[@]}"; do
    while :; do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$address$path") || true
      [ "$code" = 200 ] && break
      if [ $SECONDS -ge $deadline ]; then
        fail "smoke URL http://$address$path answered ${code:-nothing} (not 200) within ${HEALTH_TIMEOUT} s; traffic stays on $active"
      fi
      sleep 1
    done
    say "smoke: http://$address$path answered 200"
  done
done

# --- 4. the gates once more, as the switch will run them -----------------------
"$BGSWITCH" switch "$idle" --dry-run >/dev/null 2>&1 || fail "the dry run of the switch to $idle failed; traffic stays on $active"
say "dry run passed"

# --- 5. switch, and let bgswitch observe ------------------------------------------
say "switching to $idle (drain ${DRAIN_SECONDS}s, observe ${OBSERVE_SECONDS}s)"
switched_at=$SECONDS
"$BGSWITCH" switch "$idle" --reason "deploy $IMAGE_TAG" --drain-timeout "${DRAIN_SECONDS}s" \
  --observe "${OBSERVE_SECONDS}s" --wait
rc=$?
case $rc in
  0) ;;
  1) fail "$IMAGE_TAG on $idle was refused or rolled back; traffic is on $active (the $idle containers are left running for inspection)" ;;
  *) say "bgswitch switch failed (exit $rc)" >&2; exit 2 ;;
esac
say "$IMAGE_TAG serves from $idle"

# --- 6. stop the old color once its connections have drained ---------------------
wait_left=$((switched_at + DRAIN_SECONDS - SECONDS))
if [ $wait_left -gt 0 ]; then
  say "waiting ${wait_left}s for $active's connections to drain"
  sleep "$wait_left"
fi
say "stopping $active: $STOP_CMD"
COLOR=$active sh -c "$STOP_CMD" || say "warning: STOP_CMD failed for $active (exit $?)" >&2
say "deployed $IMAGE_TAG"
exit 0
