"""Every `az deployment` command in docs/deploy.md must work as written against infra/main.bicep:
each `--parameters name=value` names a parameter the template declares, with a value of its type
(az reads an inline value as JSON when it can), allowed and in range; every parameter without a
default is given; a parameters file has no azd `${...}` placeholders left (az does not fill them).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "deploy.md"


def az_deployment_commands() -> list[str]:
    """`az deployment ...` commands from the doc's code blocks and inline code, continuations joined."""
    text = DOC.read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("az deployment ")]
    # Inline code counts when it is a command (it has options), not a mention like `az deployment sub what-if`.
    commands += [c for c in re.findall(r"`(az deployment [^`]+)`", text) if " --" in c]
    return commands


def declared_parameters(template: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=template)["parameters"])


def decorator(param: dict[str, Any], kind: str) -> Any:
    return next((d["argument"] for d in param.get("decorators", []) if d["type"] == kind), None)


def check_value(name: str, raw: Any, param: dict[str, Any], *, inline: bool) -> None:
    kind = param["type"]
    value = raw
    # Inline, az reads a value that parses as JSON as JSON; in a parameters file "100" stays a string.
    if inline and isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if kind == "int":
        assert isinstance(value, int) and not isinstance(value, bool), f"{name}={raw!r} is not an int"
        low, high = decorator(param, "min_value"), decorator(param, "max_value")
        assert low is None or value >= low, f"{name}={value} < {low}"
        assert high is None or value <= high, f"{name}={value} > {high}"
    elif kind == "bool":
        assert isinstance(value, bool), f"{name}={raw!r} is not a bool"
    elif kind == "string":
        value = raw if isinstance(raw, str) else value
        assert isinstance(value, str), f"{name}={raw!r} is not a string"
        assert "${" not in value, f"{name}: an azd placeholder az will not fill: {value}"
    allowed = decorator(param, "allowed")
    if allowed is not None and not (isinstance(value, str) and value.startswith("$(")):
        assert value in allowed, f"{name}={value!r} not in {allowed}"


def parse_command(command: str) -> tuple[dict[str, str], list[str]]:
    """(options other than --parameters, the --parameters arguments)."""
    words = shlex.split(command)
    options: dict[str, str] = {}
    parameters: list[str] = []
    i = 4  # after: az deployment sub|group <verb>
    while i < len(words):
        word = words[i]
        assert word.startswith("--"), f"unexpected word {word!r} in: {command}"
        i += 1
        values = []
        while i < len(words) and not words[i].startswith("--"):
            values.append(words[i])
            i += 1
        if word in ("--parameters", "-p"):
            parameters += values
        else:
            options[word] = " ".join(values)
    return options, parameters


COMMANDS = az_deployment_commands()


def test_the_doc_has_deployment_commands() -> None:
    assert any(" create " in c for c in COMMANDS) and any(" what-if " in c for c in COMMANDS), COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_az_deployment_command_matches_main_bicep(command: str) -> None:
    options, parameters = parse_command(command)
    template = REPO_ROOT / options["--template-file"]
    assert template.is_file(), template
    declared = declared_parameters(template)
    assert command.startswith("az deployment sub "), "main.bicep is subscription-scoped"
    assert options.get("--location"), "a subscription deployment needs --location"
    given: dict[str, tuple[Any, bool]] = {}
    for argument in parameters:
        if "=" in argument:
            name, value = argument.split("=", 1)
            given[name] = (value, True)
        else:
            path = REPO_ROOT / argument.removeprefix("@")
            values = json.loads(path.read_text())["parameters"]
            given.update({name: (entry["value"], False) for name, entry in values.items()})
    for name, (value, inline) in given.items():
        assert name in declared, f"{name} is not a parameter of {template.name}"
        check_value(name, value, declared[name], inline=inline)
    required = {name for name, param in declared.items() if param.get("default") is None}
    assert required <= set(given), f"missing required parameters: {sorted(required - set(given))}"
