"""The CI jobs that prove what this machine cannot (issue 11) stay in the pipelines: actionlint only
says the workflow is valid, not that the iac, host-smoke and container-smoke jobs are still there,
run their scripts, and gate the deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK_JOBS = {
    "test": "make test",
    "iac": "tools/ci/iac.sh",
    "host-smoke": "tools/ci/host_smoke.sh",
    "container-smoke": "tools/ci/container_smoke.sh",
}


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    return loaded


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def test_every_check_job_runs_its_script_on_python_3_13() -> None:
    jobs = workflow()["jobs"]
    for name, command in CHECK_JOBS.items():
        assert name in jobs, f"ci.yml has no {name} job"
        assert command in runs(jobs[name]), f"{name} does not run {command}: {runs(jobs[name])}"
        pythons = [step["with"]["python-version"] for step in jobs[name]["steps"]
                   if str(step.get("uses", "")).startswith("actions/setup-python@")]
        assert pythons == ["3.13"], f"{name}: {pythons}"
        assert "if" not in jobs[name], f"{name} must run on every push and pull request"


def test_deploy_and_image_need_every_check() -> None:
    jobs = workflow()["jobs"]
    for name in ("deploy", "image"):
        assert set(CHECK_JOBS) <= set(jobs[name]["needs"]), f"{name} needs {jobs[name]['needs']}"
    # deploy runs when what-if was skipped (no sandbox), so its `if` must name each check's result.
    for check in CHECK_JOBS:
        assert f"needs.{check}.result == 'success'" in jobs["deploy"]["if"], check


def test_the_ci_scripts_check_what_the_issue_asks() -> None:
    iac = (REPO_ROOT / "tools" / "ci" / "iac.sh").read_text()
    for fragment in ("az bicep build", "az bicep lint", "kubectl kustomize infra/k8s | kubeconform -strict",
                     "actionlint", "shellcheck"):
        assert fragment in iac, fragment
    host = (REPO_ROOT / "tools" / "ci" / "host_smoke.sh").read_text()
    container = (REPO_ROOT / "tools" / "ci" / "container_smoke.sh").read_text()
    for script in (host, container):
        commands = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        for step in ("check_all_functions_listed ", "invoke_reconcile ", '"$PYTHON" -m tools.smoke ',
                     "check_log_clean "):
            assert any(step in line for line in commands), step
    assert "func start" in host
    for fragment in ("--read-only", "--user 10001:10001", "--cap-drop ALL", "/run/secrets/functions-keys:ro",
                     '"401"'):
        assert fragment in container, fragment


def test_the_jenkinsfile_runs_the_same_scripts() -> None:
    text = (REPO_ROOT / "Jenkinsfile").read_text()
    for command in CHECK_JOBS.values():
        assert command in text, command
