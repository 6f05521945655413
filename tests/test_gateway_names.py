"""A gateway is named only where it lives: its own file, its fake, the tests and the generated SQL
(and the human docs, as an example). `gateways/` imports nothing from `shared/`, and the modules of
both import each other without a cycle. Every registered gateway is checked, so a new one is
covered the moment its file exists."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest

from gateways.base import Gateway
from gateways.registry import gateway_types

ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = frozenset({900})
"""The simulator: the service's own stand-in for local runs, switched on by its own setting
(`ENABLE_SIMULATOR`, which keeps its V1 name) and the default of `tools.smoke`; not a gateway one
adds, so the service may know it."""
ANYONE_MAY_NAME = ("tests/*", "infra/sql/*", "README.md", "docs/*.md")
"""The tests (a gateway's own, and those that exercise several), the migrations `tools.migrations`
generates, and the human docs, which name gateways as examples."""
NO_TEST_MAY_NAME = ("tests/conformance/*",)
"""The suite every gateway must pass alike: a case that names a gateway can leave it out."""
TEST_DEPENDENCIES = "requirements-dev.txt"
"""Test-only packages: a gateway's own client library, for the contract test that compares our wire
bodies with it, is named here as a package (`<module>-api`), never elsewhere."""


UNTRACKED_DIRS = frozenset({"node_modules", "__pycache__"})


def tracked_files() -> list[str]:
    """The repository's files: git's list, or, in a copy of the tree without git, every file outside
    hidden and generated folders."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0:
        return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]
    return sorted(
        path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*")
        if path.is_file() and not any(part.startswith(".") or part in UNTRACKED_DIRS
                                      for part in path.relative_to(ROOT).parts)
    )


def gateways_under_test() -> list[type[Gateway]]:
    return [cls for type_id, cls in sorted(gateway_types().items()) if type_id not in BUILT_IN]


def names_of(cls: type[Gateway]) -> set[str]:
    """How a gateway can be named: its name, its module, and the settings that configure it."""
    return {cls.name, cls.__module__.rsplit(".", 1)[-1], *cls.url_settings()} - {""}


def may_name(path: str, cls: type[Gateway]) -> bool:
    module = cls.__module__.rsplit(".", 1)[-1]
    own = (f"gateways/{module}.py", f"tests/fakes/{module}.py")
    if any(fnmatch(path, pattern) for pattern in NO_TEST_MAY_NAME):
        return False
    return path in own or any(fnmatch(path, pattern) for pattern in ANYONE_MAY_NAME)


def token_kinds() -> set[str]:
    """The contract's card-token types the gateways declare ("<gateway>_payment_method"...): words of
    the monolith's contract, which the service may use, not mentions of a gateway."""
    return {kind for cls in gateway_types().values() for kind in cls.token_kinds}


def mentions(text: str, names: set[str]) -> list[str]:
    """Each line naming any of `names`, whatever the case (a module, a host name, a prose mention)."""
    pattern = re.compile("|".join(re.escape(name) for name in sorted(names)), re.IGNORECASE)
    kinds = re.compile("|".join(re.escape(kind) for kind in sorted(token_kinds(), key=len, reverse=True)) or "$^")
    return [line.strip() for line in text.splitlines() if pattern.search(kinds.sub("", line))]


def read(path: str) -> str | None:
    try:
        return (ROOT / path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # an image


@pytest.mark.parametrize("cls", gateways_under_test(), ids=lambda cls: cls.name)
def test_a_gateway_is_named_only_where_it_lives(cls: type[Gateway]) -> None:
    names = names_of(cls)
    offenders: dict[str, list[str]] = {}
    for path in tracked_files():
        if may_name(path, cls) or (text := read(path)) is None:
            continue
        lines = mentions(text, names)
        if path == TEST_DEPENDENCIES:
            module = cls.__module__.rsplit(".", 1)[-1]
            lines = [line for line in lines if not re.fullmatch(rf"{re.escape(module)}-api==[\d.]+", line)]
        if lines:
            offenders[path] = lines
    assert offenders == {}


def test_the_rule_sees_a_mention_in_any_case() -> None:
    cls = gateways_under_test()[0]
    name = cls.name
    assert mentions(f"call {name.lower()} here\nnothing\n# {name.upper()} too", names_of(cls)) == [
        f"call {name.lower()} here", f"# {name.upper()} too",
    ]
    assert may_name(f"gateways/{cls.__module__.rsplit('.', 1)[-1]}.py", cls)
    assert not may_name("shared/flow.py", cls) and not may_name("docs/openapi.yaml", cls)
    assert may_name("tests/test_flow_gateways.py", cls) and not may_name("tests/conformance/test_conformance.py", cls)


def python_modules() -> dict[str, Path]:
    """Every module of the `gateways` and `shared` packages by its dotted name."""
    found = {}
    for package in ("gateways", "shared"):
        for path in sorted((ROOT / package).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ours `path` imports, at any level (type-checking and lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            # `from gateways import registry` imports a module; `from gateways.base import Gateway` a name.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                yield target
                break


def import_graph() -> dict[str, set[str]]:
    modules = python_modules()
    return {name: set(imports_of(path, modules)) - {name} for name, path in modules.items()}


def test_gateways_import_nothing_from_shared() -> None:
    graph = import_graph()
    assert {name: sorted(t for t in targets if t.split(".")[0] == "shared")
            for name, targets in graph.items() if name.startswith("gateways")
            and any(t.split(".")[0] == "shared" for t in targets)} == {}


def test_no_import_cycle_among_gateways_and_shared() -> None:
    graph = import_graph()
    assert {"gateways.base", "gateways.http", "shared.flow", "shared.settings"} <= set(graph)
    cycles = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import gateways.b\n")
    (tmp_path / "b.py").write_text("from gateways.a import thing\n")
    modules = {"gateways.a": tmp_path / "a.py", "gateways.b": tmp_path / "b.py"}
    assert list(imports_of(modules["gateways.a"], modules)) == ["gateways.b"]
    assert list(imports_of(modules["gateways.b"], modules)) == ["gateways.a"]
