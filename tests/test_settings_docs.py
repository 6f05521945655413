"""Every setting the code reads is documented in the README's settings table, and the example
settings file names only settings the code reads."""

from __future__ import annotations

import json
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME"}
"""Read by the Functions host, not by the app."""


def test_every_setting_read_is_in_the_readme() -> None:
    names = set(Settings.setting_names())
    assert {"CREDENTIAL_SOURCE", "KEY_VAULT_URL", "GATEWAY_TIMEOUT_SECONDS", "IDEMPOTENCY_STORE",
            "GATEWAY_ENVIRONMENT"} <= names
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert undocumented == []


def test_the_example_settings_are_settings_the_code_reads() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert sorted(set(example) - set(Settings.setting_names()) - HOST_SETTINGS) == []
