"""Draw the operations workbook (infra/modules/dashboard.workbook.json) from sample data, for the docs.

    python -m tools.render_workbook                       # writes docs/img/dashboard.png
    python -m tools.render_workbook --out /tmp/x.png --hours 12 --seed 7

The workbook's KQL runs only in Azure, so each chart is drawn from generated data of the shape its
query returns (the same columns, series and visualization); titles, order and chart kinds come from
the workbook file itself. The sample is one day of the registered gateways, the first of them slowing
down and declining in bursts in the afternoon, the kind of picture the alerts are for. Needs matplotlib
(requirements-dev.txt); never deployed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gateways.registry import gateway_types

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "infra" / "modules" / "dashboard.workbook.json"
DEFAULT_OUT = ROOT / "docs" / "img" / "dashboard.png"


@dataclass(frozen=True)
class Traffic:
    """A sample gateway's day: calls per half hour at the peak, approval rate, latency."""

    peak: int
    approval: float
    latency_ms: float


REAL_TRAFFIC = (Traffic(120, 93.0, 900.0), Traffic(80, 95.0, 450.0), Traffic(50, 94.0, 600.0))
LOCAL_TRAFFIC = Traffic(6, 90.0, 40.0)
"""A gateway called at no URL (the simulator): a little test traffic."""


def sample_gateways() -> dict[str, Traffic]:
    """Every registered gateway with its sample traffic: those called at a URL first, in type id order."""
    ordered = sorted(gateway_types().items(), key=lambda item: (not item[1].url_setting, item[0]))
    real = iter(REAL_TRAFFIC * len(ordered))
    return {cls.name: next(real) if cls.url_setting else LOCAL_TRAFFIC for _, cls in ordered}


GATEWAYS = sample_gateways()
INCIDENT_AT = next(iter(GATEWAYS))
BIN = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    visualization: str
    query: str


@dataclass(frozen=True)
class Series:
    """Time-series data: one list of values per series, over shared bin start times."""

    times: list[dt.datetime]
    values: dict[str, list[float]]
    unit: str


@dataclass(frozen=True)
class Categories:
    values: dict[str, float]
    unit: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


Sample = Series | Categories | Table


def charts(workbook: dict[str, Any]) -> list[Chart]:
    """The workbook's query items (type 3), in order."""
    return [
        Chart(item["name"], item["content"]["title"], item["content"]["visualization"], item["content"]["query"])
        for item in workbook["items"]
        if item.get("type") == 3
    ]


class SampleDay:
    """One day of generated traffic, seeded, with an incident at `INCIDENT_AT` from 14:00 to 16:00."""

    def __init__(self, hours: int, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - sample data for a picture, not a secret
        start = dt.datetime(2026, 12, 1, 0, 0)
        self.times = [start + BIN * i for i in range(hours * 2)]

    def incident(self, time: dt.datetime) -> bool:
        return 14 <= time.hour < 16

    def load(self, time: dt.datetime) -> float:
        """Enrolment traffic: quiet at night, busiest around midday."""
        return 0.15 + max(0.0, 1 - abs(time.hour + time.minute / 60 - 13) / 8)

    def calls(self) -> Series:
        values = {
            gateway: [
                float(round(GATEWAYS[gateway].peak * self.load(t) * self.rng.uniform(0.85, 1.15))) for t in self.times
            ]
            for gateway in GATEWAYS
        }
        return Series(self.times, values, "calls")

    def approval_rate(self) -> Series:
        values = {
            gateway: [
                GATEWAYS[gateway].approval - (35.0 if gateway == INCIDENT_AT and self.incident(t) else 0.0)
                + self.rng.uniform(-2.5, 2.5)
                for t in self.times
            ]
            for gateway in GATEWAYS
        }
        return Series(self.times, values, "%")

    def latency(self) -> Series:
        values = {
            gateway: [
                GATEWAYS[gateway].latency_ms * (4.0 if gateway == INCIDENT_AT and self.incident(t) else 1.0)
                * self.rng.uniform(0.8, 1.25)
                for t in self.times
            ]
            for gateway in GATEWAYS
        }
        return Series(self.times, values, "ms")

    def unknowns_and_reconciler(self) -> Series:
        return self._reconciliation[0]

    @cached_property
    def _reconciliation(self) -> tuple[Series, list[dt.datetime]]:
        unknown = [float(self.rng.randint(3, 7) if self.incident(t) else self.rng.random() < 0.05) for t in self.times]
        # A record is looked up once RECONCILE_AFTER_SECONDS old (the next bin); one the gateway cannot
        # answer for is escalated after RECONCILE_MAX_ATTEMPTS, 2-3 hours later.
        decided: dict[str, list[float]] = {
            "reconciled_voided": [0.0] * len(self.times),
            "reconciled_nothing_charged": [0.0] * len(self.times),
            "reconcile_needs_attention": [0.0] * len(self.times),
        }
        for i, count in enumerate(unknown):
            for _ in range(int(count)):
                roll = self.rng.random()
                decision, lag = (
                    ("reconciled_voided", 1) if roll < 0.6
                    else ("reconciled_nothing_charged", 1) if roll < 0.93
                    else ("reconcile_needs_attention", 5)
                )
                decided[decision][min(i + lag, len(self.times) - 1)] += 1
        escalated = [
            self.times[i] + dt.timedelta(minutes=self.rng.randint(0, 29))
            for i, count in enumerate(decided["reconcile_needs_attention"])
            for _ in range(int(count))
        ]
        return Series(self.times, {"unknown outcome": unknown, **decided}, "records"), escalated

    def errors_by_code(self) -> Categories:
        return Categories(
            {
                "declined": 412,
                "validation_error": 57,
                "outcome_unknown": 24,
                "gateway_unreachable": 11,
                "idempotency_key_reused": 6,
                "credentials_unavailable": 2,
            },
            "calls",
        )

    def needs_attention(self) -> Table:
        """The escalations drawn in unknowns_and_reconciler, newest first."""
        rows = [
            [when.strftime("%Y-%m-%d %H:%M"), "2001", "payment", f"ord-{self.rng.getrandbits(24):06x}", "12",
             f"{INCIDENT_AT} no_response"]
            for when in sorted(self._reconciliation[1], reverse=True)
        ]
        return Table(["timestamp", "merchantAccountId", "operation", "orderId", "attempts", "reason"], rows)


SAMPLES: dict[str, Callable[[SampleDay], Sample]] = {
    "calls-per-gateway": SampleDay.calls,
    "approval-rate": SampleDay.approval_rate,
    "gateway-latency": SampleDay.latency,
    "unknowns-and-reconciler": SampleDay.unknowns_and_reconciler,
    "errors-by-code": SampleDay.errors_by_code,
    "needs-attention": SampleDay.needs_attention,
}


def _draw(ax: Any, chart: Chart, sample: Sample) -> None:
    import matplotlib.dates as mdates

    ax.set_title(chart.title, fontsize=10, loc="left")
    if isinstance(sample, Table):
        ax.axis("off")
        if not sample.rows:
            ax.text(0.5, 0.5, "none in this time range", ha="center", va="center", fontsize=9)
            return
        table = ax.table(cellText=sample.rows, colLabels=sample.columns, loc="upper center", cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(col=list(range(len(sample.columns))))
        table.scale(1, 1.4)
        return
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    if isinstance(sample, Categories):
        names = list(sample.values)[::-1]
        ax.barh(names, [sample.values[n] for n in names], color="#0078d4")
        ax.set_xlabel(sample.unit, fontsize=8)
        return
    if chart.visualization == "barchart":
        bottom = [0.0] * len(sample.times)
        width = BIN / dt.timedelta(days=1) * 0.9
        for label, values in sample.values.items():
            ax.bar(sample.times, values, width=width, bottom=bottom, label=label, align="edge")
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylim(0, max(bottom) * 1.3 + 1)  # room for the stack and the legend
    else:
        for label, values in sample.values.items():
            ax.plot(sample.times, values, label=label, linewidth=1.4)
    ax.set_ylabel(sample.unit, fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
    ax.legend(fontsize=7, loc="best", ncols=2)


def render(out: Path, hours: int = 24, seed: int = 15, workbook_path: Path = WORKBOOK) -> list[str]:
    """Draw every chart of the workbook into one PNG; the names of the charts drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workbook = json.loads(workbook_path.read_text(encoding="utf-8"))
    found = charts(workbook)
    unknown = [c.name for c in found if c.name not in SAMPLES]
    if unknown:
        raise SystemExit(f"no sample data for workbook chart(s) {', '.join(unknown)}: add them to SAMPLES")
    day = SampleDay(hours, seed)
    rows = (len(found) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(15, 4.2 * rows), squeeze=False)
    title = "Payment gateway operations (sample data; infra/modules/dashboard.workbook.json)"
    figure.suptitle(title, fontsize=13, x=0.01, ha="left")
    for ax, chart in zip(axes.flat, found, strict=False):
        _draw(ax, chart, SAMPLES[chart.name](day))
    for ax in list(axes.flat)[len(found):]:
        ax.axis("off")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return [c.name for c in found]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render_workbook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default {DEFAULT_OUT})")
    parser.add_argument("--hours", type=int, default=24, help="hours of sample data (default 24)")
    parser.add_argument("--seed", type=int, default=15, help="random seed of the sample (default 15)")
    args = parser.parse_args(argv)
    drawn = render(args.out, args.hours, args.seed)
    print(f"wrote {args.out} ({len(drawn)} charts: {', '.join(drawn)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
