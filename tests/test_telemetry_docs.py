"""docs/telemetry.md's metric table is what the code creates: the alert rules and the workbook are
checked against that table (tests/infra), so a metric renamed or added in the code alone would leave
them querying a name nothing sends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from shared.telemetry_otel import SCOPE, OpenTelemetry

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "telemetry.md"


class RecordingMeter:
    """A meter that records each instrument's name, kind and unit as the code creates it."""

    def __init__(self) -> None:
        self.instruments: dict[str, tuple[str, str]] = {}

    def _create(self, kind: str, name: str, unit: str = "", **_: Any) -> object:
        assert name not in self.instruments, f"{name} created twice"
        self.instruments[name] = (kind, unit)
        return object()

    def create_counter(self, name: str, unit: str = "", **kwargs: Any) -> object:
        return self._create("counter", name, unit, **kwargs)

    def create_histogram(self, name: str, unit: str = "", **kwargs: Any) -> object:
        return self._create("histogram", name, unit, **kwargs)


class RecordingMeterProvider:
    def __init__(self) -> None:
        self.meter = RecordingMeter()
        self.scopes: list[str] = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> RecordingMeter:
        self.scopes.append(name)
        return self.meter


def documented_metrics() -> dict[str, tuple[str, str]]:
    """Name -> (kind, unit) from the rows of the doc's "Metrics" table."""
    section = DOC.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(paymentgateway\.[a-z_.]+)` \| (counter|histogram), `([^`]*)` \|", section, re.M)
    return {name: (kind, unit) for name, kind, unit in rows}


def test_the_documented_metrics_are_exactly_the_instruments_the_code_creates() -> None:
    provider = RecordingMeterProvider()
    OpenTelemetry(TracerProvider(), provider, "file")
    assert provider.scopes == [SCOPE]
    documented = documented_metrics()
    assert len(documented) >= 11, documented
    assert provider.meter.instruments == documented
