"""The AKS manifests probe GET /health: liveness and startup only ask the worker to answer, readiness
checks the dependencies, and every probe waits longer than the health check's own time budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from shared import health

ROOT = Path(__file__).resolve().parents[2]


def container() -> dict[str, Any]:
    deployment = yaml.safe_load((ROOT / "infra" / "k8s" / "deployment.yaml").read_text())
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_probes_use_the_health_function() -> None:
    route = json.loads((ROOT / "Health" / "function.json").read_text())["bindings"][0]["route"]
    probes = {name: container()[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == f"/{route}"
    assert probes["livenessProbe"]["path"] == f"/{route}?probe={health.Probe.LIVE.value}"
    assert probes["startupProbe"]["path"] == f"/{route}?probe={health.Probe.LIVE.value}"
    for probe in probes.values():
        assert probe["port"] == "http"


def test_readiness_waits_longer_than_the_checks_budget() -> None:
    # Both store checks run in parallel threads, each waited for at most CHECK_TIMEOUT_SECONDS.
    assert container()["readinessProbe"]["timeoutSeconds"] > health.CHECK_TIMEOUT_SECONDS + 1
