"""GET /health: readiness (configuration, idempotency store, credential store) or, with
`?probe=live`, liveness. Anonymous: the answer holds check names and statuses only."""

import json

import azure.functions as func

from shared import health


def main(req: func.HttpRequest) -> func.HttpResponse:
    try:
        probe = health.Probe(req.params.get("probe", health.Probe.READY))
    except ValueError:
        body = {"status": "bad_request", "message": "probe must be ready or live"}
        return func.HttpResponse(json.dumps(body), status_code=400, mimetype="application/json")
    report = health.report(probe)
    return func.HttpResponse(
        json.dumps(report.to_json()),
        status_code=report.http_status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
