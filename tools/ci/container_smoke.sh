#!/usr/bin/env bash
# CI, on a runner with Docker and internet: build the image and run it the way infra/k8s runs it
# (read-only root file system with only /tmp writable, UID 10001, no capabilities, function keys as
# read-only files under /run/secrets/functions-keys), on the simulator with Azurite as host storage.
# Fails unless a request without a key gets 401, tools.smoke passes with a key, ReconcileUnknown
# runs through the admin endpoint with the master key, and the log shows no load or permission error.
#
#   IMAGE=payment-gateway:smoke tools/ci/container_smoke.sh       (PORT is fixed: the image's 8080)
set -euo pipefail

# shellcheck source=tools/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$FUNCTION_ROOT"

image="${IMAGE:-payment-gateway:smoke}"
name="payment-gateway-smoke-$$"
base="http://127.0.0.1:8080"
work="$(mktemp -d)"
log="$work/container.log"
azurite_pid=""

cleanup() {
  local status=$?
  docker logs "$name" >"$log" 2>&1 || true
  docker rm -f "$name" >/dev/null 2>&1 || true
  [[ -n "$azurite_pid" ]] && kill "$azurite_pid" 2>/dev/null || true
  if ((status != 0)) && [[ -s "$log" ]]; then
    echo "---- container log (last 200 lines) ----" >&2
    tail -n 200 "$log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

DOCKER_BUILDKIT=1 docker build --pull --tag "$image" .

# Keys as the AKS Secret provides them (docs/deploy.md, "Function keys"): one file per key.
keys="$work/functions-keys"
mkdir -p "$keys"
for key in host.master host.function.default host.systemKey.default; do
  "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$keys/$key"
done
for fn in $(function_names); do
  "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$keys/functions.${fn,,}.default"
done
chmod 0755 "$keys" && chmod 0444 "$keys"/*
cp local.credentials.json "$work/credentials.json" && chmod 0444 "$work/credentials.json"

azurite_pid="$(start_azurite "$work/azurite.log")"
docker run --detach --name "$name" --network host \
  --read-only --tmpfs /tmp:rw,size=256m --user 10001:10001 --cap-drop ALL --security-opt no-new-privileges \
  --volume "$keys:/run/secrets/functions-keys:ro" \
  --volume "$work/credentials.json:/run/config/credentials.json:ro" \
  --env AzureWebJobsSecretStorageType=kubernetes \
  --env AzureWebJobsStorage=UseDevelopmentStorage=true \
  --env AzureFunctionsWebHost__hostid=payment-gateway-smoke \
  --env CREDENTIAL_SOURCE=file --env LOCAL_CREDENTIALS_FILE=/run/config/credentials.json \
  --env ENABLE_SIMULATOR=true \
  --env IDEMPOTENCY_STORE=sqlite --env IDEMPOTENCY_SQLITE_PATH=/tmp/idempotency.sqlite \
  "$image" >/dev/null

[[ "$(docker exec "$name" id -u)" == "10001" ]] || fail "the container does not run as UID 10001"
wait_for_status "$base/" 200 240
master="$(cat "$keys/host.master")"
check_all_functions_listed "$base" -H "x-functions-key: $master"

status="$(post_status "$base/paymentGateway/processPayment" -H 'Content-Type: application/json' --data '{}')"
[[ "$status" == "401" ]] || fail "a payment without a function key answered $status, not 401"
echo "no key: 401"

CONTAINER="$name" invoke_reconcile "$base" "$log" -H "x-functions-key: $master"
SMOKE_FUNCTION_KEY="$(cat "$keys/host.function.default")" "$PYTHON" -m tools.smoke --url "$base" --merchant 1001
docker logs "$name" >"$log" 2>&1
check_log_clean "$log"
echo "container smoke: OK"
