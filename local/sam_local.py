"""``make moto``: the local moto for ``sam local`` (for users with Docker): DynamoDB with the template's table, the
background state machine from the same ASL file, and one API key, on ``http://127.0.0.1:$MOTO_PORT`` (5005).

``sam local start-api`` / ``sam local invoke`` then run the buffered functions and the worker in containers against
it, with ``--env-vars local/sam-local-env.json`` and ``--parameter-overrides LocalAwsEndpointUrl=...`` (SAM CLI
passes only the variables a template declares, so the endpoint is a template parameter that deployments leave
empty). Background executions started here run their worker steps inside this moto (``local.moto_server``), as in
``make serve``. Stops on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
ENV_VARS = ROOT / "local" / "sam-local-env.json"
API_KEY = "sk-local"


def main(argv: list[str] | None = None) -> int:
    """Start moto with the stack's resources; print how to point sam local at it; wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m local.sam_local", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "5005")))
    args = parser.parse_args(argv)
    from local.aws import (
        LOCAL_TABLE,
        create_state_machines,
        create_table,
        function_environment,
        seed_api_keys,
        start_moto,
        state_machine_variables,
    )
    from local.template import load_template

    template = load_template()
    expected = json.loads(ENV_VARS.read_text())["Parameters"]
    if expected.get("TABLE_NAME") != LOCAL_TABLE:
        raise SystemExit(f"{ENV_VARS.name}: TABLE_NAME must be {LOCAL_TABLE}")
    os.environ.update(state_machine_variables(template))
    moto = start_moto(args.port, environment=function_environment(LOCAL_TABLE))
    try:
        create_table(template.table_properties, LOCAL_TABLE)
        machines = create_state_machines(template, LOCAL_TABLE)
        seed_api_keys([(API_KEY, "default")], LOCAL_TABLE)
        print(f"moto on {moto.endpoint}: table {LOCAL_TABLE}, state machines {sorted(machines)}, key {API_KEY}")
        print("in another shell (Docker; on Linux --docker-network host lets the containers reach 127.0.0.1):")
        print("  .venv/bin/python -m local.artifact build --arch x86_64   # or arm64 on an arm64 machine")
        print(
            "  .cache/sam/bin/sam local start-api -t .aws-sam/lambda-check/x86_64/template.yaml \\\n"
            "    --docker-network host --env-vars local/sam-local-env.json \\\n"
            f"     --parameter-overrides LocalAwsEndpointUrl={moto.endpoint}"
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
