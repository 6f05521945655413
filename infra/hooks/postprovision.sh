#!/usr/bin/env bash
# azd postprovision hook: create the idempotency HMAC key in Key Vault once (never rotate it
# here: changing it makes in-flight idempotency records unreadable). Needs the Azure CLI logged
# in as the deploying user, who gets Key Vault Secrets Officer through AZURE_PRINCIPAL_ID.
set -euo pipefail

vault="${AZURE_KEY_VAULT_NAME:?AZURE_KEY_VAULT_NAME is not set (run via azd)}"
name="${IDEMPOTENCY_HMAC_SECRET_NAME:-idempotency-hmac-key}"

if ! command -v az >/dev/null 2>&1; then
  echo "az CLI not found: create the secret yourself (docs/deploy.md, 'Idempotency HMAC key')." >&2
  exit 1
fi

# Role assignments can take a few minutes to apply; retry reads before deciding.
for attempt in 1 2 3 4 5 6; do
  if out="$(az keyvault secret show --vault-name "$vault" --name "$name" --query id --output tsv 2>&1)"; then
    echo "Key Vault secret $name already exists; leaving it unchanged."
    exit 0
  fi
  case "$out" in
    *SecretNotFound*) break ;;
  esac
  echo "Waiting for Key Vault access (attempt $attempt): ${out%%$'\n'*}" >&2
  sleep 20
done

value="$(openssl rand -base64 48)"
az keyvault secret set --vault-name "$vault" --name "$name" --value "$value" \
  --content-type "text/plain" --output none
echo "Created Key Vault secret $name."
