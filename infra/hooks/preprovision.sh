#!/usr/bin/env bash
# azd preprovision hook: set AZURE_PRINCIPAL_TYPE (User or ServicePrincipal) from the account azd
# itself is signed in with, so that the deployer's role assignments carry the right principalType
# (a wrong one fails provisioning with UnmatchedPrincipalType; CI and `azd pipeline config` sign in
# as a service principal). A value already in the azd environment wins:
#   azd env set AZURE_PRINCIPAL_TYPE ServicePrincipal
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/hooks/lib.sh
source "$here/lib.sh"

if [[ -n "${AZURE_PRINCIPAL_TYPE:-}" ]]; then
  echo "preprovision: AZURE_PRINCIPAL_TYPE=$AZURE_PRINCIPAL_TYPE (from the azd environment)"
  exit 0
fi

command -v azd >/dev/null 2>&1 || die "azd is not on PATH"
token="$(azd auth token --output json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["token"])')" ||
  die "cannot read azd's access token: run 'azd auth login', or set AZURE_PRINCIPAL_TYPE yourself"
# App-only tokens (service principals, managed identities) say idtyp=app and carry no scp claim.
idtyp="$(printf '%s' "$token" | jwt_claim idtyp)"
scp="$(printf '%s' "$token" | jwt_claim scp)"
if [[ "$idtyp" == "app" || ( -z "$idtyp" && -z "$scp" ) ]]; then
  principal_type=ServicePrincipal
else
  principal_type=User
fi
azd env set AZURE_PRINCIPAL_TYPE "$principal_type"
echo "preprovision: azd is signed in as a $principal_type; set AZURE_PRINCIPAL_TYPE=$principal_type"
