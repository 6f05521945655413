"""The operations workbook (infra/modules/dashboard.workbook.json) is a valid workbook with the
charts ops look at first, querying the names docs/telemetry.md publishes; tools/render_workbook.py
draws it into a PNG."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import render_workbook

ROOT = Path(__file__).resolve().parents[2]
WORKBOOK = ROOT / "infra" / "modules" / "dashboard.workbook.json"
TELEMETRY_DOC = ROOT / "docs" / "telemetry.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# chart name -> (visualization, fragments its query must hold)
CHARTS: dict[str, tuple[str, list[str]]] = {
    "calls-per-gateway": ("timechart", ['"paymentgateway.calls"', "by gateway", "bin(timestamp"]),
    "approval-rate": ("timechart", ['"paymentgateway.calls"', '"approved"', '"declined"', "by gateway",
                                    "bin(timestamp"]),
    "gateway-latency": ("timechart", ["dependencies", 'name startswith "gateway "', "percentile(duration, 95)",
                                      "by gateway = target"]),
    "unknowns-and-reconciler": ("barchart", ['"paymentgateway.outcome.unknown"', '"paymentgateway.reconcile.actions"',
                                             '"decision"', "bin(timestamp"]),
    "errors-by-code": ("barchart", ['"paymentgateway.calls"', '"error.code"', "by code"]),
    "needs-attention": ("table", ["traces", "reconcile_needs_attention", "merchantAccountId", "reason"]),
}


def workbook() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORKBOOK.read_text())
    return data


def queries() -> dict[str, dict[str, Any]]:
    return {item["name"]: item["content"] for item in workbook()["items"] if item["type"] == 3}


def test_the_workbook_is_a_notebook_with_a_time_range_every_query_uses() -> None:
    data = workbook()
    assert data["version"] == "Notebook/1.0"
    assert data["$schema"].endswith("/schema/workbook.json")
    names = [item["name"] for item in data["items"]]
    assert len(names) == len(set(names)), "item names must be unique"
    (parameters,) = [item["content"] for item in data["items"] if item["type"] == 9]
    declared = {p["name"] for p in parameters["parameters"]}
    assert "TimeRange" in declared
    for name, content in queries().items():
        assert content["version"] == "KqlItem/1.0", name
        assert content["queryType"] == 0 and content["resourceType"] == "microsoft.insights/components", name
        assert content["timeContextFromParameter"] in declared, name
        for token in re.findall(r"\{(\w+)(?::\w+)?\}", content["query"]):
            assert token in declared, f"{name} uses an undeclared parameter {token}"


def test_the_workbook_has_the_charts_ops_look_at_first() -> None:
    found = queries()
    assert set(found) == set(CHARTS)
    for name, (visualization, fragments) in CHARTS.items():
        assert found[name]["visualization"] == visualization, name
        assert found[name]["title"], name
        for fragment in fragments:
            assert fragment in found[name]["query"], f"{name}: {fragment!r} missing"


def test_the_workbook_reads_only_names_telemetry_publishes() -> None:
    doc = TELEMETRY_DOC.read_text()
    published = set(re.findall(r"`(paymentgateway\.[a-z_.]+)`", doc))
    attributes = set(re.findall(r"^\| `([a-z_.]+)` \|", doc, re.M))
    for name, content in queries().items():
        for metric in re.findall(r'"(paymentgateway\.[a-z_.]+)"', content["query"]):
            assert metric in published, f"{name} reads {metric}, which docs/telemetry.md does not publish"
        for attribute in re.findall(r'customDimensions\["([a-z_.]+)"\]', content["query"]):
            assert attribute in attributes, f"{name} reads attribute {attribute}, not in docs/telemetry.md"


def test_the_render_script_writes_a_png_of_every_chart(tmp_path: Path) -> None:
    out = tmp_path / "img" / "dashboard.png"
    result = subprocess.run(
        [sys.executable, "-m", "tools.render_workbook", "--out", str(out), "--hours", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert out.stat().st_size > 20_000
    for name in CHARTS:
        assert name in result.stdout


def test_a_chart_without_sample_data_is_refused(tmp_path: Path) -> None:
    data = workbook()
    data["items"].append({**data["items"][-1], "name": "new-chart"})
    path = tmp_path / "workbook.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="new-chart"):
        render_workbook.render(tmp_path / "x.png", workbook_path=path)
    assert not (tmp_path / "x.png").exists()


def test_the_committed_picture_is_in_the_operations_doc() -> None:
    assert (ROOT / "docs" / "img" / "dashboard.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "](img/dashboard.png)" in (ROOT / "docs" / "operations.md").read_text()
