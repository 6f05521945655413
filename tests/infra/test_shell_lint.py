"""shellcheck on every shell script and on the Jenkinsfile's shell steps; actionlint (which runs
shellcheck on each `run:` step) on the GitHub workflows; and the CI smoke helpers' own checks.

Needs env SHELLCHECK and ACTIONLINT = paths of the binaries (the Makefile sets them to
.venv-tools/bin/...). A missing one fails rather than skips, so the gate cannot silently vanish.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".venv-tools", "node_modules", ".data", "__pycache__", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", ".hypothesis"}


def binary(env: str) -> str:
    value = os.environ.get(env, "").strip()
    if not value:
        pytest.fail(f"env {env} is not set: point it at the binary, e.g. {env}=.venv-tools/bin/{env.lower()} "
                    "(.venv-tools/bin/pip install -r requirements-tools.txt)")
    path = value if os.sep in value else shutil.which(value)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"env {env}={value!r} is not an executable")
    return str(path)


def shell_scripts() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(folder) / name
            if name.endswith(".sh") or (path.is_file() and path.read_bytes()[:40].startswith(b"#!/usr/bin/env bash")):
                found.append(path)
    return sorted(found)


def test_the_scripts_are_found() -> None:
    names = {str(p.relative_to(REPO_ROOT)) for p in shell_scripts()}
    assert {".ci/run", "tools/checkov_all.sh", "infra/hooks/postprovision.sh", "tools/ci/host_smoke.sh"} <= names


def test_every_shell_script_is_shellcheck_clean() -> None:
    scripts = [str(p.relative_to(REPO_ROOT)) for p in shell_scripts()]
    result = subprocess.run([binary("SHELLCHECK"), "-x", "--color=never", *scripts], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def jenkins_shell_steps() -> list[str]:
    """The shell text of every sh step, with the AZ_LOGIN preamble expanded as Groovy does."""
    text = (REPO_ROOT / "Jenkinsfile").read_text()
    preamble = re.search(r"def AZ_LOGIN = '''(.*?)'''", text, re.S)
    assert preamble
    steps = []
    for match in re.finditer(r"sh (AZ_LOGIN \+ )?'''(.*?)'''|sh '([^'\n]*)'", text, re.S):
        body = match.group(2) if match.group(2) is not None else match.group(3)
        steps.append((preamble.group(1) if match.group(1) else "") + body)
    return steps


def test_jenkinsfile_shell_steps_are_shellcheck_clean(tmp_path: Path) -> None:
    steps = jenkins_shell_steps()
    assert len(steps) >= 6, steps
    for index, step in enumerate(steps):
        script = tmp_path / f"step{index}.sh"
        # Jenkins runs sh steps with /bin/sh -xe; the agent's sh is bash on the supported agents.
        script.write_text("#!/usr/bin/env bash\n" + step)
        result = subprocess.run([binary("SHELLCHECK"), "--color=never", str(script)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, step + "\n" + result.stdout


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    shellcheck_dir = str(Path(binary("SHELLCHECK")).parent)
    env = {**os.environ, "PATH": f"{shellcheck_dir}:{os.environ.get('PATH', '')}"}
    return subprocess.run([binary("ACTIONLINT"), "-color=false", *map(str, files)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_workflows_are_actionlint_clean() -> None:
    workflows = sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    result = actionlint(*workflows)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_actionlint_runs_shellcheck_on_run_steps(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "name: bad\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo $UNQUOTED\n      - run: echo ${{ github.event.head_commit.message }}\n"
    )
    result = actionlint(workflows / "bad.yml")
    assert result.returncode == 1
    assert "SC2086" in result.stdout, result.stdout
    assert "potentially untrusted" in result.stdout


def run_ci_lib(snippet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"source tools/ci/lib.sh; {snippet}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_ci_log_check_fails_on_a_function_load_error(tmp_path: Path) -> None:
    log = tmp_path / "host.log"
    log.write_text("Host started\nWorker process started and initialized.\n")
    assert run_ci_lib(f"check_log_clean {log}").returncode == 0
    log.write_text("Host started\nMicrosoft.Azure.WebJobs.Script: FunctionLoadError: ReconcileUnknown: binding timer "
                   "has invalid non-type annotation\n")
    result = run_ci_lib(f"check_log_clean {log}")
    assert result.returncode == 1 and "FunctionLoadError" in result.stderr
    log.write_text("System.UnauthorizedAccessException: Access to the path '/home/site' is denied.\n")
    assert run_ci_lib(f"check_log_clean {log}").returncode == 1


def test_ci_expects_every_function_folder() -> None:
    result = run_ci_lib("function_names")
    assert result.stdout.split() == sorted(p.parent.name for p in REPO_ROOT.glob("*/function.json"))
