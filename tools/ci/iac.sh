#!/usr/bin/env bash
# CI, on a runner with internet: compile and lint the Bicep (warnings are errors: bicepconfig.json
# sets every analyzer rule to "error"), validate the rendered Kubernetes manifests against the
# API schemas, and lint the workflows and every shell script.
#
# Needs on PATH: az (with `az bicep install` done), kubectl, kubeconform, actionlint, shellcheck.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in az kubectl kubeconform actionlint shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is not on PATH" >&2; exit 1; }
done

echo "== bicep build + lint (infra/bicepconfig.json: every rule is an error)"
for file in infra/main.bicep infra/modules/*.bicep; do
  az bicep build --file "$file" --stdout >/dev/null
  az bicep lint --file "$file"
done

echo "== kubectl kustomize infra/k8s | kubeconform -strict"
kubectl kustomize infra/k8s | kubeconform -strict -summary -output text -

echo "== actionlint"
actionlint -color=false

echo "== shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck -x "${scripts[@]}"
echo "iac: OK"
