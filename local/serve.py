"""``make serve``: the whole stack on ``127.0.0.1:$PORT`` — API Gateway emulation, the same handlers, moto.

Environment: ``PORT`` (default 3000); ``UPSTREAM_BASE_URL`` / ``UPSTREAM_API_KEY`` choose the model (unset:
the built-in demo model, and the banner says so); ``API_KEYS`` (``key:tenant,key:tenant``) turns authentication
on: their hashes are stored in the local table at start-up and every request needs one of them (or a key made
with ``python -m engine.cli.keys``). Unset, auth is OFF: any bearer, or none, is the one default tenant.
``AUTH_CACHE_SECONDS`` (authorizer cache), ``LOCAL_RATE_LIMIT`` / ``LOCAL_BURST_LIMIT`` (per-key throttle)
override the template's defaults.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    # The engine is a Lambda layer (/opt/python when deployed); put it on the path the same way.
    sys.path.insert(0, str(ROOT / "layers" / "engine"))
    port = int(os.environ.get("PORT", "3000"))
    from .aws import (
        LOCAL_TABLE,
        create_buckets,
        create_state_machines,
        create_table,
        function_environment,
        parse_api_keys,
        seed_api_keys,
        start_moto,
        state_machine_variables,
    )
    from .template import load_template

    started = time.monotonic()
    template = load_template()
    # The functions' environment (template.yaml's Globals with local values, and STATE_MACHINE_ARN) is set
    # before anything else: moto runs the state machines' workers in its own process with the same variables,
    # and the handlers are loaded below while moto starts.
    environment = function_environment(LOCAL_TABLE)
    try:
        api_keys = parse_api_keys(os.environ.get("API_KEYS", ""))
    except ValueError as exc:
        print(f"API_KEYS: {exc}", file=sys.stderr)
        return 2
    # A deployment is keys|single (the template allows nothing else); the local stack is off unless API_KEYS.
    environment["AUTH_MODE"] = "keys" if api_keys else "off"
    if api_keys:
        # The stack's shared usage-plan key (keys made with engine.cli.keys without --usage-plan-id are metered by it).
        environment["USAGE_IDENTIFIER_KEY"] = "local-shared-usage-key"
    os.environ.update(environment)
    os.environ.update(state_machine_variables(template))
    from .websocket_gateway import local_websocket_environment

    os.environ.update(local_websocket_environment(template, f"http://127.0.0.1:{port}"))
    moto = start_moto(environment=environment, wait=False)
    # uvicorn handles SIGTERM by shutting down and then re-raising it with the previous handler; Python's default
    # would end the process there and skip the `finally` below, leaving moto running. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        from .gateway import Gateway

        gateway = Gateway(template)  # imports every handler (as cold starts would) while moto imports its own
        import boto3

        for service in ("dynamodb", "iam", "lambda", "stepfunctions", "s3"):
            boto3.client(service)  # botocore loads a service's model once per process: ~0.3 s, also while moto starts
        moto.wait_ready()
        create_table(template.table_properties, LOCAL_TABLE)
        create_buckets(template)
        seed_api_keys(api_keys, LOCAL_TABLE)
        create_state_machines(template, LOCAL_TABLE)

        import uvicorn

        upstream = os.environ.get("UPSTREAM_BASE_URL", "")
        model = f"upstream {upstream}" if upstream else "built-in DEMO model (set UPSTREAM_BASE_URL / UPSTREAM_API_KEY)"
        routes = ", ".join(f"{r.method} /{template.stage}{r.path}" for r in template.routes)
        machines = ", ".join(template.state_machines) or "none"
        print(f"Responses API (local stack) on http://127.0.0.1:{port}/{template.stage}", flush=True)
        print(f"  model: {model}", flush=True)
        print(f"  routes from template.yaml: {routes}", flush=True)
        if gateway.websockets.path:
            print(f"  WebSocket mode: ws://127.0.0.1:{port}{gateway.websockets.path}", flush=True)
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        print(f"  DynamoDB/S3/Lambda/Step Functions: moto on {endpoint} (state machines: {machines})", flush=True)
        if api_keys:
            tenants = ", ".join(sorted({tenant for _, tenant in api_keys}))
            print(
                f"  auth: API keys required ({len(api_keys)} from API_KEYS, tenants: {tenants}; more with "
                f"`python -m engine.cli.keys create`); authorizer cache {gateway.auth_ttl:g}s; "
                f"limit {gateway.rate_limit:g} req/s, burst {gateway.burst_limit} per key",
                flush=True,
            )
        else:
            print(
                "  auth: OFF - any bearer key, or none, is accepted as tenant "
                f"'{os.environ.get('DEFAULT_TENANT') or 'default'}'. Set API_KEYS=key:tenant,... to require keys.",
                flush=True,
            )
        print(f"  set up in {time.monotonic() - started:.2f}s", flush=True)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
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
