"""Every primitive of the interface is abstract, and no gateway answers one with NotImplementedError:
a default that raises it turned an unknown outcome into "unknown forever" (a retry or the reconciler
could never look the payment up), and a gateway could leave one out without any test noticing."""

from __future__ import annotations

import ast
from pathlib import Path

from gateways.base import Gateway
from gateways.registry import gateway_types

ROOT = Path(__file__).resolve().parent.parent.parent
PRIMITIVES = frozenset({
    "charge", "payment_status", "void", "refund", "find_payment", "find_refund", "verify_credentials", "scrub",
})


def test_every_primitive_is_abstract() -> None:
    assert Gateway.__abstractmethods__ == PRIMITIVES


def test_every_registered_gateway_implements_every_primitive() -> None:
    for cls in gateway_types().values():
        assert cls.__abstractmethods__ == frozenset(), cls.__name__


def raises_not_implemented(path: Path) -> list[int]:
    """The lines of `path` that raise NotImplementedError (the class or an instance of it)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "NotImplementedError":
                lines.append(node.lineno)
    return lines


def test_no_gateway_raises_not_implemented() -> None:
    found = {str(path.relative_to(ROOT)): raises_not_implemented(path) for path in (ROOT / "gateways").glob("*.py")}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_check_sees_a_raise(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text("def f():\n    raise NotImplementedError\n\n\n"
                                   "def g():\n    raise NotImplementedError('x')\n")
    assert raises_not_implemented(tmp_path / "g.py") == [2, 6]
