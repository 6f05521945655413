"""Reading docs/openapi.yaml for the contract tests (and a quick check from the command line).

    python -m tools.openapi_check      # validates the document as OpenAPI 3.1; exit 1 if it is not

Needs PyYAML, jsonschema_rs and schemathesis (requirements-dev.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"

OPERATIONS: dict[str, tuple[str, str]] = {
    "processPayment": ("/paymentGateway/processPayment", "post"),
    "processRefund": ("/paymentGateway/processRefund", "patch"),
}


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return spec


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s (`#/a/b`) until a node that is not a bare reference."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are used here, not {ref}")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def body_schema(spec: dict[str, Any], operation_id: str) -> dict[str, Any]:
    path, method = OPERATIONS[operation_id]
    body = resolve(spec, spec["paths"][path][method]["requestBody"])
    schema: dict[str, Any] = resolve(spec, body["content"]["application/json"]["schema"])
    return schema


def property_types(prop: dict[str, Any]) -> set[str]:
    """The JSON types a property admits, from `type` (a name or a list) or `anyOf` branches."""
    if "anyOf" in prop:
        return {t for branch in prop["anyOf"] for t in property_types(branch)}
    declared = prop.get("type")
    if declared is None:
        return set()
    return {declared} if isinstance(declared, str) else set(declared)


def response_validator(spec: dict[str, Any], pointer: str) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator for the schema at `pointer`, its references resolved
    against the whole document."""
    root = {**spec, "$ref": pointer}
    return jsonschema_rs.Draft202012Validator(root)


def main() -> int:
    import schemathesis

    try:
        schemathesis.openapi.from_path(SPEC_PATH).validate()
    except jsonschema_rs.ValidationError as error:
        print(f"{SPEC_PATH}: not valid OpenAPI 3.1: {error}", file=sys.stderr)
        return 1
    print(f"{SPEC_PATH}: valid OpenAPI {load_spec()['openapi']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
