"""Every function folder loads through the Functions worker's own runtime (azure-functions-runtime-v1,
the version Azure runs), so a function the worker would refuse fails the tests: `tools/worker_load.py`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tools.worker_load import FunctionLoadRefused, load

ROOT = Path(__file__).resolve().parent.parent
APP_FUNCTIONS = sorted(spec.parent for spec in ROOT.glob("*/function.json"))

TIMER = [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 */5 * * * *"}]
HTTP = [
    {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["post"]},
    {"type": "http", "direction": "out", "name": "$return"},
]


def test_the_app_functions_are_all_found() -> None:
    names = {folder.name for folder in APP_FUNCTIONS}
    assert names == {"Health", "ProcessPayment", "ProcessRefund", "ReconcileUnknown"}


@pytest.mark.parametrize("folder", APP_FUNCTIONS, ids=lambda folder: folder.name)
def test_the_worker_runtime_loads_every_function(folder: Path) -> None:
    main = load(folder)
    assert main.__module__ == f"__app__.{folder.name}"
    assert main.__name__ == json.loads((folder / "function.json").read_text()).get("entryPoint", "main")


def temporary_function(root: Path, body: str, bindings: list[dict[str, Any]]) -> Path:
    # A fresh name each time: the worker imports the folder as __app__.<name> once per process.
    folder = root / f"Fn{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    (folder / "__init__.py").write_text(f"import azure.functions as func\n\n\n{body}\n", encoding="utf-8")
    (folder / "function.json").write_text(json.dumps({"scriptFile": "__init__.py", "bindings": bindings}))
    return folder


def test_a_correct_temporary_function_loads(tmp_path: Path) -> None:
    """The control for the refusals below: the same harness accepts a function the worker accepts."""
    main = load(temporary_function(tmp_path, "def main(timer: func.TimerRequest) -> None:\n    pass", TIMER))
    assert main.__name__ == "main"


@pytest.mark.parametrize(
    ("body", "bindings", "message"),
    [
        (
            "def main(timer: func.TimerRequest | None) -> None:\n    pass",
            TIMER,
            "binding timer has invalid non-type annotation azure.functions._timer.TimerRequest | None",
        ),
        (
            "def main(timer: func.TimerRequest, now: float) -> None:\n    pass",
            TIMER,
            "the following parameters are declared in Python but not in function.json: {'now'}",
        ),
        (
            "def main(req: func.HttpRequest) -> dict:\n    return {}",
            HTTP,
            'Python return annotation "dict" does not match binding type "http"',
        ),
        (
            "def main(req: func.HttpRequest) -> func.HttpResponse | None:\n    return None",
            HTTP,
            "has invalid non-type return annotation",
        ),
        (
            "def main(request: func.HttpRequest) -> func.HttpResponse:\n    return func.HttpResponse()",
            HTTP,
            "declared in Python but not in function.json: {'request'}",
        ),
        (
            "def main(req: func.TimerRequest) -> func.HttpResponse:\n    return func.HttpResponse()",
            HTTP,
            'type of req binding in function.json "httpTrigger" does not match its Python annotation "TimerRequest"',
        ),
    ],
    ids=["union-annotation", "extra-parameter", "return-type", "union-return", "renamed-parameter", "wrong-type"],
)
def test_the_worker_runtime_refuses_what_azure_refuses(
    tmp_path: Path, body: str, bindings: list[dict[str, Any]], message: str
) -> None:
    folder = temporary_function(tmp_path, body, bindings)
    with pytest.raises(FunctionLoadRefused) as refused:
        load(folder)
    assert str(refused.value).startswith(f"FunctionLoadError: cannot load the {folder.name} function: ")
    assert message in str(refused.value)


def test_an_import_error_is_refused_with_the_workers_hint(tmp_path: Path) -> None:
    folder = temporary_function(tmp_path, "import not_a_module_anywhere  # noqa: F401", TIMER)
    with pytest.raises(FunctionLoadRefused, match=r"ModuleNotFoundError: .*not_a_module_anywhere.*requirements\.txt"):
        load(folder)
