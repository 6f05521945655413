"""Every setting the code reads is documented in the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_read_is_in_the_readme() -> None:
    source = (ROOT / "shared" / "settings.py").read_text()
    names = set(re.findall(r'env(?:\.get\(|, )"([A-Za-z_]+)"', source))
    assert {"CREDENTIAL_SOURCE", "KEY_VAULT_URL", "GATEWAY_TIMEOUT_SECONDS", "IDEMPOTENCY_STORE"} <= names
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert undocumented == []
