"""A local HTTP host for the function app, for machines without Azure Functions Core Tools.

    python -m tools.devhost --port 7071

Serves every function folder from its `function.json` (route, methods, authLevel) under
`host.json`'s `extensions.http.routePrefix`, loading `local.settings.json` `Values` into the
environment the way `func start` does (the environment wins), and logging to stdout. Timer
functions run on their `*/N` minute schedule unless `--no-timers`.

Each folder is loaded by the Functions worker's own runtime (`tools/worker_load.py`, the
`azure-functions-runtime-v1` that Azure runs): a function the worker would refuse is refused here,
with the worker's message. Requests and timer ticks then go straight to the entry point that the
runtime registered: carrying an invocation through the runtime needs the host protocol's generated
message classes, which no package ships. So the devhost emulates the host; it is not the host: no
bindings beyond HTTP in/out and timers, no host.json throttles, its own HTTP-to-HttpRequest
conversion. Where Core Tools exist, `func start` is the way.

Like `func start`, keys are not enforced unless `--function-key KEY` is given; then a request must
carry it in `x-functions-key` or `?code=`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tools import worker_load

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("devhost")


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    main: Callable[[func.HttpRequest], func.HttpResponse]


@dataclass(frozen=True)
class TimerFunction:
    name: str
    every_seconds: int
    main: Callable[[func.TimerRequest], None]


def load_local_settings(root: Path) -> None:
    path = root / "local.settings.json"
    if not path.exists():
        return
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(key, str(value))


def _werkzeug_route(template: str) -> str:
    def convert(match: re.Match[str]) -> str:
        name, _, constraint = match.group(1).partition(":")
        if name.startswith("*"):
            return f"<path:{name[1:]}>"
        return f"<int:{name}>" if constraint == "int" else f"<{name.rstrip('?')}>"

    return re.sub(r"\{([^}]+)\}", convert, template)


def _schedule_seconds(schedule: str) -> int:
    """NCRONTAB `0 */N * * * *` as N minutes; other schedules are not emulated."""
    match = re.fullmatch(r"0 \*/(\d+) \* \* \* \*", schedule.strip())
    if not match:
        raise ValueError(f"devhost only runs '0 */N * * * *' timers, not {schedule!r}")
    return int(match.group(1)) * 60


def discover(root: Path) -> tuple[str, list[HttpFunction], list[TimerFunction]]:
    host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")
    http_functions: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    for spec_path in sorted(root.glob("*/function.json")):
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        folder = spec_path.parent.name
        entry = worker_load.load(spec_path.parent)
        for binding in spec["bindings"]:
            if binding.get("type") == "httpTrigger":
                http_functions.append(
                    HttpFunction(
                        name=folder,
                        route=binding.get("route", folder),
                        methods=tuple(m.upper() for m in binding.get("methods", [])),
                        auth_level=binding.get("authLevel", "function"),
                        main=entry,
                    )
                )
            elif binding.get("type") == "timerTrigger":
                timers.append(TimerFunction(folder, _schedule_seconds(binding["schedule"]), entry))
    return prefix, http_functions, timers


class DevHost:
    def __init__(self, root: Path, function_key: str | None = None) -> None:
        self.prefix, self.functions, self.timers = discover(root)
        self.function_key = function_key
        self.openapi = root / "docs" / "openapi.yaml"
        rules = []
        for index, function in enumerate(self.functions):
            path = "/" + "/".join(p for p in (self.prefix, _werkzeug_route(function.route)) if p)
            rules.append(Rule(path, endpoint=index, methods=list(function.methods) or None))
        self.routes = Map(rules, strict_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/openapi.yaml" and self.openapi.exists():
            return Response(self.openapi.read_bytes(), mimetype="application/yaml")
        try:
            endpoint, route_params = self.routes.bind_to_environ(request.environ).match()
        except (NotFound, MethodNotAllowed) as error:
            return Response(status=error.code)
        except HTTPException as error:
            return Response(status=error.code or 400)
        function = self.functions[endpoint]
        if not self._authorised(function, request):
            return Response(status=401)
        http_request = func.HttpRequest(
            method=request.method,
            url=request.url,
            headers=dict(request.headers),
            params=dict(request.args),
            route_params={k: str(v) for k, v in route_params.items()},
            body=request.get_data(),
        )
        result = function.main(http_request)
        logger.info("%s %s -> %s (%s)", request.method, request.path, result.status_code, function.name)
        response = Response(result.get_body(), status=result.status_code)
        for key, value in result.headers.items():
            response.headers[key] = value
        if result.mimetype:
            response.headers["Content-Type"] = f"{result.mimetype}; charset={result.charset or 'utf-8'}"
        return response

    def _authorised(self, function: HttpFunction, request: Request) -> bool:
        if self.function_key is None or function.auth_level == "anonymous":
            return True
        offered = request.headers.get("x-functions-key") or request.args.get("code") or ""
        return hmac.compare_digest(offered.encode(), self.function_key.encode())

    def start_timers(self, stop: threading.Event) -> None:
        for timer in self.timers:
            def loop(timer: TimerFunction = timer) -> None:
                while not stop.wait(timer.every_seconds):
                    try:
                        timer.main(func.TimerRequest(past_due=False))
                    except Exception as error:  # noqa: BLE001 - a failed run must not stop the schedule
                        logger.error("timer %s failed: %s", timer.name, type(error).__name__)

            threading.Thread(target=loop, name=f"timer-{timer.name}", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--function-key", default=os.environ.get("DEVHOST_FUNCTION_KEY"))
    parser.add_argument("--no-timers", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    load_local_settings(ROOT)
    app = DevHost(ROOT, args.function_key)
    stop = threading.Event()
    if not args.no_timers:
        app.start_timers(stop)
    server = make_server(args.host, args.port, app, threaded=True)
    for function in app.functions:
        methods = ",".join(function.methods) or "ANY"
        prefix = f"{app.prefix}/" if app.prefix else ""
        print(f"  {function.name}: [{methods}] http://{args.host}:{server.port}/{prefix}{function.route}", flush=True)
    print(f"devhost listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


if __name__ == "__main__":
    main()
