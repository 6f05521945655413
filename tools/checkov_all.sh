#!/usr/bin/env bash
# Offline security gate: run checkov over every IaC/pipeline artefact and fail unless each run
# scanned something, reports 0 failed checks and 0 parsing errors.
# checkov exits 0 when a file fails to parse, and silently skips GitHub workflows that do not
# match its schema, so the verdict is taken from the JSON summaries, not from the exit codes.
#
#   CHECKOV=.venv-tools/bin/checkov tools/checkov_all.sh
#
# Runs the four frameworks in parallel (~6-8 s each). Needs python3 (or $PYTHON) to read JSON.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

CHECKOV="${CHECKOV:-.venv-tools/bin/checkov}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$CHECKOV" ]] && ! command -v "$CHECKOV" >/dev/null 2>&1; then
  echo "checkov not found at '$CHECKOV' (set CHECKOV to the binary path)" >&2
  exit 2
fi

out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT

common=(--skip-download --compact -o json)

# name | arguments
declare -a names=(bicep dockerfile kubernetes github_actions)
declare -A args=(
  [bicep]="-d infra --framework bicep --external-checks-dir infra/checkov"
  [dockerfile]="-f Dockerfile --framework dockerfile"
  [kubernetes]="-d infra/k8s --framework kubernetes"
  [github_actions]="-d .github/workflows --framework github_actions"
)

declare -A pids=()
for name in "${names[@]}"; do
  # shellcheck disable=SC2086  # the argument strings above are word-split on purpose
  "$CHECKOV" ${args[$name]} "${common[@]}" >"$out_dir/$name.json" 2>"$out_dir/$name.err" &
  pids[$name]=$!
done

declare -A rcs=()
for name in "${names[@]}"; do
  if wait "${pids[$name]}"; then rcs[$name]=0; else rcs[$name]=$?; fi
done

status=0
for name in "${names[@]}"; do
  # checkov exits 1 on failed checks; anything else is a crash.
  if [[ "${rcs[$name]}" -gt 1 ]]; then
    echo "checkov $name: crashed (exit ${rcs[$name]})" >&2
    tail -n 20 "$out_dir/$name.err" >&2 || true
    status=1
    continue
  fi
  if ! "$PYTHON" - "$name" "$out_dir/$name.json" <<'PY'
import json
import sys

name, path = sys.argv[1], sys.argv[2]
try:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
except (OSError, ValueError) as exc:
    print(f"checkov {name}: no JSON report ({exc})")
    sys.exit(1)

reports = data if isinstance(data, list) else [data]
passed = failed = skipped = parsing_errors = 0
failures, skips = [], []
for report in reports:
    summary = report.get("summary", report)
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    parsing_errors += summary.get("parsing_errors", 0)
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        failures.append(f"{check['check_id']} {check['resource']} ({check.get('file_path')}:{check.get('file_line_range')})")
    for check in results.get("skipped_checks", []):
        skips.append(f"{check['check_id']} {check['resource']}")
    for err in results.get("parsing_errors", []) if isinstance(results.get("parsing_errors"), list) else []:
        failures.append(f"parse error: {err}")

ok = failed == 0 and parsing_errors == 0 and passed + skipped > 0
verdict = "OK" if ok else "FAIL"
print(f"checkov {name:<15} {verdict}: passed={passed} failed={failed} skipped={skipped} parsing_errors={parsing_errors}")
if passed + skipped == 0:
    print(f"  nothing was checked (wrong path, or files checkov could not recognise)")
for line in failures:
    print(f"  FAILED  {line}")
for line in skips:
    print(f"  skipped {line}")
sys.exit(0 if ok else 1)
PY
  then
    status=1
  fi
done

if [[ $status -eq 0 ]]; then
  echo "checkov: all frameworks clean"
else
  echo "checkov: FAILED" >&2
fi
exit $status
