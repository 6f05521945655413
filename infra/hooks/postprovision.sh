#!/usr/bin/env bash
# azd postprovision hook: make sure the secret the app's IDEMPOTENCY_HMAC_SECRET_NAME setting names
# exists in the vault its KEY_VAULT_URL names, creating it once (never rotating it here: a new key
# makes in-flight idempotency records unreadable). Without it every payment answers 503, so this
# hook fails the provision instead of letting `azd up` report success.
#
# The Azure CLI must be signed in as the principal azd provisioned for (AZURE_PRINCIPAL_ID), the one
# that got Key Vault Secrets Officer. Role assignments can take minutes to apply, so Forbidden
# answers are retried until HMAC_SECRET_WAIT_SECONDS (default 900) have passed.
#
# Environment (azd passes its environment to hooks): AZURE_PRINCIPAL_ID, AZURE_TENANT_ID,
# AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME, AZURE_KEY_VAULT_NAME,
# AZURE_KEY_VAULT_URL; optional HMAC_SECRET_WAIT_SECONDS, HMAC_SECRET_RETRY_SECONDS (default 15).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/hooks/lib.sh
source "$here/lib.sh"

vault="$(require AZURE_KEY_VAULT_NAME)"
vault_url="$(require AZURE_KEY_VAULT_URL)"
app="$(require AZURE_FUNCTION_APP_NAME)"
group="$(require AZURE_RESOURCE_GROUP)"
subscription="$(require AZURE_SUBSCRIPTION_ID)"
wait_seconds="${HMAC_SECRET_WAIT_SECONDS:-900}"
retry_seconds="${HMAC_SECRET_RETRY_SECONDS:-15}"

require_az_as_azd_principal

# The app's own settings say which vault and which secret it reads: check those, not a guess.
settings="$(az functionapp config appsettings list --subscription "$subscription" --resource-group "$group" \
  --name "$app" --output json)" || die "cannot read the app settings of $app (resource group $group)"
name="$(app_setting "$settings" IDEMPOTENCY_HMAC_SECRET_NAME)"
app_vault_url="$(app_setting "$settings" KEY_VAULT_URL)"
[[ -n "$name" ]] || die "$app has no IDEMPOTENCY_HMAC_SECRET_NAME setting: every payment would answer 503"
[[ "${app_vault_url%/}" == "${vault_url%/}" ]] ||
  die "$app reads KEY_VAULT_URL=$app_vault_url, but this environment's vault is $vault_url"
echo "postprovision: $app reads secret '$name' from $vault_url"

# Read until the answer is either the secret or SecretNotFound; Forbidden means the role
# assignment has not reached Key Vault yet.
state="$(wait_for_secret "$vault" "$name" "$wait_seconds" "$retry_seconds")"
if [[ "$state" == "missing" ]]; then
  create_secret "$vault" "$name" "$wait_seconds" "$retry_seconds"
  echo "postprovision: created Key Vault secret '$name'."
else
  echo "postprovision: Key Vault secret '$name' already exists; left unchanged."
fi

# Check what the app will find: the secret, enabled.
enabled="$(az keyvault secret show --vault-name "$vault" --name "$name" --query attributes.enabled --output tsv)" ||
  die "secret '$name' cannot be read back from $vault"
[[ "$enabled" == "true" ]] || die "secret '$name' in $vault is disabled: the app cannot read it"
echo "postprovision: OK, secret '$name' is in $vault and enabled."
