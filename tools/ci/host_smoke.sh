#!/usr/bin/env bash
# CI, on a runner with internet: the real Functions host (Core Tools `func start`) with Azurite and
# the simulator. Fails unless the host lists every function folder, logs no FunctionLoadError,
# runs ReconcileUnknown through the admin endpoint, and `tools.smoke` passes against it.
#
# Needs: `func` (Core Tools 4) on PATH, `npm ci` done (Azurite), and a python on PATH with
# requirements.txt installed (the host starts the worker with it). Core Tools does not enforce
# keys locally, so the admin call needs no master key and the smoke run passes none (the
# container smoke checks the keys).
#
#   tools/ci/host_smoke.sh            (PORT, default 7071)
set -euo pipefail

# shellcheck source=tools/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$FUNCTION_ROOT"

port="${PORT:-7071}"
base="http://127.0.0.1:$port"
work="$(mktemp -d)"
log="$work/func.log"
azurite_pid=""
func_pid=""
made_settings=""

cleanup() {
  local status=$?
  [[ -n "$func_pid" ]] && kill "$func_pid" 2>/dev/null || true
  [[ -n "$azurite_pid" ]] && kill "$azurite_pid" 2>/dev/null || true
  [[ -n "$made_settings" ]] && rm -f local.settings.json
  if ((status != 0)) && [[ -f "$log" ]]; then
    echo "---- func start log (last 200 lines) ----" >&2
    tail -n 200 "$log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v func >/dev/null 2>&1 || fail "func (Azure Functions Core Tools 4) is not on PATH"
# The example settings are the local ones: simulator on, file credentials (local.credentials.json),
# SQLite idempotency, host storage UseDevelopmentStorage=true (Azurite).
if [[ ! -e local.settings.json ]]; then
  cp local.settings.example.json local.settings.json
  made_settings=1
fi

azurite_pid="$(start_azurite "$work/azurite.log")"
func start --port "$port" >"$log" 2>&1 &
func_pid=$!

wait_for_status "$base/" 200 240
check_all_functions_listed "$base"
invoke_reconcile "$base" "$log"
"$PYTHON" -m tools.smoke --url "$base" --merchant 1001
check_log_clean "$log"
echo "host smoke: OK"
