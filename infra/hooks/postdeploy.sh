#!/usr/bin/env bash
# azd postdeploy hook: fail the deploy unless the host lists every function folder of this repo (a
# function the Python worker refuses to load is missing from the list), then, when the azd
# environment names a smoke-test merchant (azd env set SMOKE_MERCHANT_ID <id>, and
# SMOKE_GATEWAY_TYPE if it is not the simulator), run `python -m tools.smoke --no-charge` against
# the app with its default function key. The no-charge checks move no money; they prove routing,
# keys, validation, and that the app reads its credentials, its HMAC key and the gateway.
#
# Waits are bounded: FUNCTIONS_WAIT_SECONDS (default 300) for the function list, SMOKE_WAIT_SECONDS
# (default 600) for the smoke run (the app identity's role assignments may still be propagating).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=infra/hooks/lib.sh
source "$here/lib.sh"
cd "$root"

app="$(require AZURE_FUNCTION_APP_NAME)"
group="$(require AZURE_RESOURCE_GROUP)"
subscription="$(require AZURE_SUBSCRIPTION_ID)"
url="$(require AZURE_FUNCTION_APP_URL)"
retry_seconds="${HOOK_RETRY_SECONDS:-15}"

require_az_as_azd_principal

expected=()
for spec in "$root"/*/function.json; do
  expected+=("$(basename "$(dirname "$spec")")")
done
((${#expected[@]} > 0)) || die "no function folders found under $root"

deadline=$((SECONDS + ${FUNCTIONS_WAIT_SECONDS:-300}))
while :; do
  listed="$(az functionapp function list --subscription "$subscription" --resource-group "$group" --name "$app" \
    --query "[].name" --output tsv 2>&1)" || listed=""
  missing=()
  for name in "${expected[@]}"; do
    grep -qxE "(.*/)?$name" <<<"$listed" || missing+=("$name")
  done
  ((${#missing[@]} == 0)) && break
  ((SECONDS < deadline)) ||
    die "$app does not list ${missing[*]} (listed: ${listed//$'\n'/ }). Look for FunctionLoadError in the app's logs (Application Insights, traces)"
  echo "postdeploy: waiting for the host to list ${missing[*]}" >&2
  sleep "$retry_seconds"
done
echo "postdeploy: $app lists ${expected[*]}"

if [[ -z "${SMOKE_MERCHANT_ID:-}" ]]; then
  echo "postdeploy: SMOKE_MERCHANT_ID is not set; skipping tools.smoke (see docs/operations.md)"
  exit 0
fi
key="$(az functionapp keys list --subscription "$subscription" --resource-group "$group" --name "$app" \
  --query functionKeys.default --output tsv)" || die "cannot read the default function key of $app"
[[ -n "$key" ]] || die "$app has no default function key"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python="$PYTHON"
deadline=$((SECONDS + ${SMOKE_WAIT_SECONDS:-600}))
while :; do
  status=0
  SMOKE_FUNCTION_KEY="$key" "$python" -m tools.smoke --url "$url" --merchant "$SMOKE_MERCHANT_ID" \
    --gateway-type "${SMOKE_GATEWAY_TYPE:-900}" --no-charge || status=$?
  ((status == 0)) && break
  # 2: refused, or the merchant is not of that gateway type here: a setting to fix, not to wait for.
  ((status != 2)) || die "tools.smoke refused to run (above): check SMOKE_MERCHANT_ID and SMOKE_GATEWAY_TYPE"
  ((SECONDS < deadline)) || die "tools.smoke kept failing against $url (table above)"
  echo "postdeploy: smoke failed; retrying in ${retry_seconds}s (role assignments can take minutes)" >&2
  sleep "$retry_seconds"
done
