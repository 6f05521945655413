#!/usr/bin/env bash
# Helpers shared by the azd hooks (sourced, not run). Every failure exits non-zero with a message
# that says what to do: a hook that cannot finish must fail the azd command.

PYTHON="${PYTHON:-python3}"

die() {
  echo "ERROR: $*" >&2
  exit 1
}

# Print the value of a required environment variable, or fail naming it.
require() {
  local value="${!1:-}"
  [[ -n "$value" ]] || die "$1 is not set (run this through azd, or export it)"
  printf '%s\n' "$value"
}

# Print one claim of a JWT read from stdin (no signature check: only to see who is signed in).
jwt_claim() {
  "$PYTHON" -c '
import base64, json, sys
token = sys.stdin.read().strip()
try:
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
except (IndexError, ValueError):
    sys.exit("not a JWT")
print(claims.get(sys.argv[1], ""))
' "$1"
}

# The Azure CLI must act as the principal azd provisioned for: that one got the data roles.
require_az_as_azd_principal() {
  local expected tenant token oid tid
  command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed; install it and run 'az login'"
  expected="${AZURE_PRINCIPAL_ID:-}"
  [[ -n "$expected" ]] ||
    die "AZURE_PRINCIPAL_ID is empty: no principal was granted Key Vault Secrets Officer. Set it (azd env set AZURE_PRINCIPAL_ID <object id>) and run 'azd provision' again"
  tenant="${AZURE_TENANT_ID:-}"
  token="$(az account get-access-token --query accessToken --output tsv 2>/dev/null)" ||
    die "the Azure CLI is not signed in: run 'az login' as the account azd uses (object id $expected)"
  oid="$(printf '%s' "$token" | jwt_claim oid)" || die "cannot read the Azure CLI's access token"
  tid="$(printf '%s' "$token" | jwt_claim tid)" || die "cannot read the Azure CLI's access token"
  [[ "$oid" == "$expected" ]] ||
    die "the Azure CLI is signed in as object id $oid, but azd granted the roles to $expected: sign the CLI in as the same account (az login; or azd env set AZURE_PRINCIPAL_ID $oid and provision again)"
  [[ -z "$tenant" || "$tid" == "$tenant" ]] ||
    die "the Azure CLI is signed in to tenant $tid, but this environment is in tenant $tenant: az login --tenant $tenant"
}

# Print an app setting's value from `az functionapp config appsettings list -o json` ("" if absent).
app_setting() {
  "$PYTHON" -c '
import json, sys
for item in json.loads(sys.argv[1]):
    if item.get("name") == sys.argv[2]:
        print(item.get("value") or "")
        break
' "$1" "$2"
}

# Print "present" or "missing" once Key Vault gives a definite answer for the secret; retry any
# other answer (Forbidden while a role assignment propagates, throttling) until the deadline.
wait_for_secret() {
  local vault="$1" name="$2" wait_seconds="$3" retry_seconds="$4" out attempt=0
  local deadline=$((SECONDS + wait_seconds))
  while :; do
    attempt=$((attempt + 1))
    if out="$(az keyvault secret show --vault-name "$vault" --name "$name" --query id --output tsv 2>&1)"; then
      echo present
      return 0
    fi
    case "$out" in
      *SecretNotFound*) echo missing; return 0 ;;
    esac
    if ((SECONDS >= deadline)); then
      die "no access to secret '$name' in $vault after ${wait_seconds}s ($attempt attempts): ${out%%$'\n'*}. Check that the signed-in principal has Key Vault Secrets Officer on the vault, then run 'azd provision' again (HMAC_SECRET_WAIT_SECONDS sets the wait)"
    fi
    echo "postprovision: waiting for Key Vault access (attempt $attempt): ${out%%$'\n'*}" >&2
    sleep "$retry_seconds"
  done
}

# Create the secret with a random 48-byte value, passed in a private file (never on a command line).
create_secret() {
  local vault="$1" name="$2" wait_seconds="$3" retry_seconds="$4" out attempt=0 file
  local deadline=$((SECONDS + wait_seconds))
  file="$(umask 077 && mktemp)"
  "$PYTHON" -c 'import base64, os, sys; sys.stdout.write(base64.b64encode(os.urandom(48)).decode())' >"$file"
  while :; do
    attempt=$((attempt + 1))
    if out="$(az keyvault secret set --vault-name "$vault" --name "$name" --file "$file" --encoding utf-8 \
      --content-type text/plain --output none 2>&1)"; then
      rm -f "$file"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      rm -f "$file"
      die "cannot create secret '$name' in $vault after ${wait_seconds}s ($attempt attempts): ${out%%$'\n'*}"
    fi
    echo "postprovision: waiting for Key Vault write access (attempt $attempt): ${out%%$'\n'*}" >&2
    sleep "$retry_seconds"
  done
}
