"""What gets packaged (.funcignore) and how the AKS replicas share one host."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "infra" / "k8s"


def test_funcignore_keeps_caches_tooling_and_local_state_out_of_the_package() -> None:
    ignored = {line.strip().rstrip("/") for line in (REPO_ROOT / ".funcignore").read_text().splitlines()}
    for entry in (".venv", ".venv-tools", "node_modules", ".data", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                  ".hypothesis", ".azure", "__pycache__", "tests", "tools", "bench", "docs", "infra",
                  "local.settings.json", "local.credentials.json"):
        assert entry in ignored, entry
    # Every cache or local folder git ignores stays out of the package too.
    for line in (REPO_ROOT / ".gitignore").read_text().splitlines():
        if line.strip().endswith("/"):
            assert line.strip().rstrip("/") in ignored, line


def _documents() -> list[dict]:  # type: ignore[type-arg]
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_every_replica_shares_one_host_id_so_only_one_runs_the_timer() -> None:
    docs = _documents()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert deployment["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_maps = {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref}
    settings = {}
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] in config_maps:
            settings.update(doc["data"])
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    host_id = env.get("AzureFunctionsWebHost__hostid") or settings.get("AzureFunctionsWebHost__hostid")
    assert host_id, "without a shared host id every pod runs ReconcileUnknown"
    # The host's rule for host ids: at most 32 characters, lowercase letters, digits and dashes.
    assert len(host_id) <= 32 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", host_id), host_id
    # The singleton lock lives in host storage: every pod must use the same account.
    assert settings["AzureWebJobsStorage__blobServiceUri"].startswith("https://")


def test_deploy_doc_says_how_the_timer_runs_once() -> None:
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    assert "AzureFunctionsWebHost__hostid" in text
