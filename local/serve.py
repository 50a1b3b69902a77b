"""``make serve``: the whole stack on ``127.0.0.1:$PORT`` — API Gateway emulation, the same handlers, moto.

Environment: ``PORT`` (default 3000); ``UPSTREAM_BASE_URL`` / ``UPSTREAM_API_KEY`` choose the model (unset:
the built-in demo model, and the banner says so).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _configure_environment(table: str) -> None:
    """The variables template.yaml's Globals give a deployed function, with local values."""
    os.environ["TABLE_NAME"] = table
    os.environ.setdefault("RETENTION_DAYS", "30")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "responses-api")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ResponsesApi")
    # No CloudWatch or X-Ray daemon locally: keep metrics and traces off, logs on.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # Local MCP servers live on 127.0.0.1; a deployment refuses private and loopback addresses.
    os.environ.setdefault("MCP_ALLOW_PRIVATE_NETWORKS", "true")


def main() -> int:
    # The engine is a Lambda layer (/opt/python when deployed); put it on the path the same way.
    sys.path.insert(0, str(ROOT / "layers" / "engine"))
    port = int(os.environ.get("PORT", "3000"))
    from .aws import create_table, start_moto
    from .template import load_template

    template = load_template()
    moto = start_moto()
    _configure_environment(create_table(template.table_properties))

    import uvicorn

    from .gateway import Gateway

    gateway = Gateway(template)
    upstream = os.environ.get("UPSTREAM_BASE_URL", "")
    model = f"upstream {upstream}" if upstream else "built-in DEMO model (set UPSTREAM_BASE_URL / UPSTREAM_API_KEY)"
    routes = ", ".join(f"{r.method} /{template.stage}{r.path}" for r in template.routes)
    print(f"Responses API (local stack) on http://127.0.0.1:{port}/{template.stage}", flush=True)
    print(f"  model: {model}", flush=True)
    print(f"  routes from template.yaml: {routes}", flush=True)
    print(f"  DynamoDB/Step Functions: moto on {os.environ['AWS_ENDPOINT_URL']}", flush=True)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        uvicorn.run(
            gateway,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            loop="auto",
            http="auto",
            lifespan="off",
            timeout_keep_alive=30,
        )
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
