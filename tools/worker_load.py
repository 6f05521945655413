"""Load a function folder with the Functions worker's own code, as Azure does, without the .NET host.

On Python 3.13 the worker's execution runtime for the v1 model is `azure-functions-runtime-v1`,
pinned in requirements.txt so that Azure runs this very version. In Azure the host reads each
`function.json` and sends the worker a load request; the runtime's `function_load_request` imports
`<folder>/<scriptFile>` as `__app__.<folder>` (its `loader.load_function`) and checks the bindings
against the entry point's signature (`functions.Registry.add_function`: parameter names both ways,
annotations that must be plain classes matching the binding, the return type against the output
binding). Here the request is built from the folder's `function.json` and handed to those same
coroutines, so a function the worker would refuse is refused here, with the worker's own message.

The runtime never imports the host protocol's generated classes: the proxy worker hands them in.
The load path only builds messages and reads plain fields back, so the stand-ins below carry the
protocol's field names and enum values (FunctionRpc.proto: BindingInfo.Direction in 0, out 1,
inout 2; BindingInfo.DataType undefined 0, string 1, binary 2, stream 3; StatusResult.Status
Failure 0, Success 1, Cancelled 2). Invoking a function through the runtime needs the real
generated messages (typed data, `WhichOneof`), which no package ships, so callers invoke the entry
point that the runtime registered themselves.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from azure_functions_runtime_v1 import function_load_request, handle_event, worker_init_request


class FunctionLoadRefused(Exception):
    """The worker's runtime refused the function; the message is the one the host would log."""


class _Message(SimpleNamespace):
    """A protocol message: the runtime builds these with keyword fields and reads them back."""


class _StatusResult(_Message):
    Failure, Success, Cancelled = 0, 1, 2


class _BindingInfo(_Message):
    # Direction `in` is a Python keyword and the runtime never names it; it is the default, 0.
    out, inout = 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3


class _Protos:
    StatusResult = _StatusResult
    BindingInfo = _BindingInfo
    RpcException = _Message
    WorkerMetadata = _Message
    WorkerInitResponse = _Message
    FunctionLoadResponse = _Message


_DIRECTIONS = {"in": 0, "out": _BindingInfo.out, "inout": _BindingInfo.inout}
_DATA_TYPES = {
    "": _BindingInfo.undefined, "string": _BindingInfo.string,
    "binary": _BindingInfo.binary, "stream": _BindingInfo.stream,
}

_init_lock = threading.Lock()
_initialised = False


def _request(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(**fields), properties={"host": "127.0.0.1", "protos": _Protos})


def _init_worker() -> None:
    """The worker's init, once per process: loads azure.functions' binding registry, installs `__app__`."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        response = asyncio.run(worker_init_request(_request(worker_init_request=SimpleNamespace(capabilities={}))))
        if response.result.status != _StatusResult.Success:
            raise RuntimeError(f"the worker runtime did not initialise: {response.result}")
        _initialised = True


def _metadata(folder: Path) -> SimpleNamespace:
    """What the host sends for a function folder: its name, paths and bindings from function.json."""
    spec = json.loads((folder / "function.json").read_text(encoding="utf-8"))
    bindings = {
        binding["name"]: _BindingInfo(
            type=binding["type"],
            direction=_DIRECTIONS[binding.get("direction", "in")],
            data_type=_DATA_TYPES[binding.get("dataType", "")],
            properties={},
        )
        for binding in spec.get("bindings", [])
    }
    return SimpleNamespace(
        name=folder.name,
        directory=str(folder),
        script_file=str(folder / spec.get("scriptFile", "__init__.py")),
        entry_point=spec.get("entryPoint", ""),
        bindings=bindings,
    )


def load(folder: Path) -> Callable[..., Any]:
    """Load one function folder through the worker's runtime; return the entry point it registered.

    The folder's parent is the app root: `__app__.<folder>` is imported from there, and the app's
    own packages (`shared`, `gateways`) must be importable, as the worker puts the app root on
    sys.path. Raises FunctionLoadRefused with the worker's message when the runtime refuses it."""
    _init_worker()
    folder = folder.resolve()
    function_id = str(uuid.uuid4())
    load_request = SimpleNamespace(function_id=function_id, metadata=_metadata(folder))
    response = asyncio.run(function_load_request(_request(function_load_request=load_request)))
    if response.result.status != _StatusResult.Success:
        raise FunctionLoadRefused(response.result.exception.message)
    registered: Callable[..., Any] = handle_event._functions.get_function(function_id).func
    return registered
