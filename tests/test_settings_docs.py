"""Every setting the code reads is documented in the README's settings table, and the example
settings file names only settings the code reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.settings import REPO_ROOT, Settings

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


def shown(value: object) -> str:
    """A default as the README's table writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return value.relative_to(REPO_ROOT).as_posix()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_readme_gives_each_default_the_code_declares() -> None:
    """The defaults are declared once, on `Settings`; the README's table only repeats them, so it
    must say what the code does (a default changed in the code alone left the table saying the old)."""
    readme = (ROOT / "README.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`|]*)` \|", readme, re.M))
    defaults = {str(info.validation_alias): shown(info.default) for info in Settings.model_fields.values()
                if info.validation_alias and info.default not in ("", None)}
    lease = defaults.pop("IDEMPOTENCY_LEASE_SECONDS")  # written with how it is computed
    assert documented == defaults
    assert re.search(rf"^\| `IDEMPOTENCY_LEASE_SECONDS` \| .*\(`{lease}`\) \|", readme, re.M)
