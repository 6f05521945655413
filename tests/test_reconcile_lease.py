"""The idempotency lease outlasts every invocation: derived from host.json's functionTimeout.

A record in progress longer than the lease is taken over (by a retry or the reconciler) as left by a
dead instance; were the lease shorter than an invocation can run, two instances would act on one key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.settings import LEASE_MARGIN_SECONDS, REPO_ROOT, Settings, SettingsError, function_timeout_seconds


def host_json_timeout() -> float:
    """host.json's functionTimeout, read here independently of the code under test."""
    hours, minutes, seconds = (int(part) for part in json.loads((REPO_ROOT / "host.json").read_text())
                               ["functionTimeout"].split(":"))
    return float(hours * 3600 + minutes * 60 + seconds)


def test_lease_default_is_the_function_timeout_plus_a_margin() -> None:
    timeout = host_json_timeout()
    settings = Settings.from_env({})
    assert settings.function_timeout_seconds == timeout
    assert settings.idempotency_lease_seconds == timeout + LEASE_MARGIN_SECONDS > timeout
    assert Settings().idempotency_lease_seconds == settings.idempotency_lease_seconds
    # The longest invocation the platform allows is the function timeout: one refund's six gateway
    # calls (inquire, void or refund, each retried look-up...) fit inside it, and the lease is longer.
    assert 6 * (settings.gateway_connect_timeout_seconds + settings.gateway_timeout_seconds) <= timeout


@pytest.mark.parametrize("lease", ["1", "299", "300"])
def test_a_setting_cannot_set_the_lease_at_or_below_the_function_timeout(lease: str) -> None:
    assert host_json_timeout() == 300
    refused = r"IDEMPOTENCY_LEASE_SECONDS must be longer than host\.json's functionTimeout"
    with pytest.raises(SettingsError, match=refused):
        Settings.from_env({"IDEMPOTENCY_LEASE_SECONDS": lease})


def test_a_longer_lease_may_be_set() -> None:
    assert Settings.from_env({"IDEMPOTENCY_LEASE_SECONDS": "900"}).idempotency_lease_seconds == 900


@pytest.mark.parametrize(
    ("value", "seconds"), [("00:05:00", 300), ("00:30:00", 1800), ("01:00:00", 3600), ("1.02:00:00", 93600)]
)
def test_function_timeout_is_read_from_host_json(tmp_path: Path, value: str, seconds: float) -> None:
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"version": "2.0", "functionTimeout": value}))
    assert function_timeout_seconds(host) == seconds


@pytest.mark.parametrize("document", [{"version": "2.0"}, {"functionTimeout": "-1"}, {"functionTimeout": "5 min"}])
def test_an_unbounded_or_missing_function_timeout_is_refused(tmp_path: Path, document: dict[str, Any]) -> None:
    host = tmp_path / "host.json"
    host.write_text(json.dumps(document))
    with pytest.raises(SettingsError, match="functionTimeout"):
        function_timeout_seconds(host)
