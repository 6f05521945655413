#!/usr/bin/env bash
# Helpers for the CI smoke scripts (sourced). They start Azurite and the host, wait with bounds,
# and print the host's log when a check fails.

PYTHON="${PYTHON:-python3}"
FUNCTION_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Every function folder of the repo (the names the host must list).
function_names() {
  local spec
  for spec in "$FUNCTION_ROOT"/*/function.json; do
    basename "$(dirname "$spec")"
  done
}

# Start Azurite (blob, queue, table) in memory on 127.0.0.1; prints its PID.
start_azurite() {
  local log="$1"
  "$FUNCTION_ROOT/node_modules/.bin/azurite" --inMemoryPersistence --disableTelemetry --skipApiVersionCheck \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 >"$log" 2>&1 &
  echo $!
}

# Wait until GET url answers with the given status (bounded), or fail.
wait_for_status() {
  local url="$1" want="$2" seconds="$3" got=""
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    got="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)"
    [[ "$got" == "$want" ]] && return 0
    sleep 2
  done
  fail "$url did not answer $want within ${seconds}s (last: ${got:-no answer})"
}

# POST with optional headers; prints the HTTP status.
post_status() {
  local url="$1"
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST "$@" "$url" || true
}

# Fail when the host log shows a function it refused, or a permission problem.
check_log_clean() {
  local log="$1" pattern="FunctionLoadError|Worker failed to (index|load)|Permission denied|UnauthorizedAccessException|Access to the path .* is denied|Read-only file system"
  if grep -E -n "$pattern" "$log" >&2; then
    fail "the host log shows load or permission errors (lines above)"
  fi
}

# The names the host's admin API lists (GET /admin/functions), one per line.
listed_functions() {
  local base="$1"
  shift
  curl -fsS --max-time 10 "$@" "$base/admin/functions" |
    "$PYTHON" -c 'import json, sys; print("\n".join(f["name"] for f in json.load(sys.stdin)))'
}

check_all_functions_listed() {
  local base="$1" name listed
  shift
  listed="$(listed_functions "$base" "$@")" || fail "GET $base/admin/functions failed"
  for name in $(function_names); do
    grep -qx "$name" <<<"$listed" || fail "the host does not list $name (listed: ${listed//$'\n'/ })"
  done
  echo "host lists: ${listed//$'\n'/ }"
}

# Run ReconcileUnknown through the admin endpoint and wait for the host to log its result.
# With CONTAINER set, the log file is refreshed from `docker logs` while waiting.
invoke_reconcile() {
  local base="$1" log="$2" status
  shift 2
  status="$(post_status "$base/admin/functions/ReconcileUnknown" -H 'Content-Type: application/json' \
    --data '{"input": ""}' "$@")"
  [[ "$status" == "202" ]] || fail "POST /admin/functions/ReconcileUnknown answered $status, not 202"
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if [[ -n "${CONTAINER:-}" ]]; then docker logs "$CONTAINER" >"$log" 2>&1 || true; fi
    grep -q "Executed 'Functions.ReconcileUnknown' (Failed" "$log" && fail "ReconcileUnknown failed (host log)"
    grep -q "Executed 'Functions.ReconcileUnknown' (Succeeded" "$log" && {
      echo "ReconcileUnknown ran and succeeded"
      return 0
    }
    sleep 1
  done
  fail "ReconcileUnknown did not finish within 60s"
}
