"""moto's server in a process of its own: the local stack's DynamoDB (and, later, Step Functions).

A separate process, not a thread of the stack, because moto spends several milliseconds of CPU per call and
would otherwise hold the stack's GIL while streams are being served.
"""

from __future__ import annotations

import argparse
import logging
import os


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Step Functions executions call Lambda on MOTO_PORT; it must be set before moto is imported.
    os.environ["MOTO_PORT"] = str(args.port)
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"moto listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
