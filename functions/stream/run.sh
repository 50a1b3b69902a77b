#!/bin/bash
# Lambda Web Adapter starts this (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap execs $LAMBDA_TASK_ROOT/$_HANDLER) and proxies
# invocations to the port. That bypasses the Python runtime's bootstrap, which is what puts the task root and the
# layers (/opt/python) on sys.path, so they go on PYTHONPATH here, as Lambda Web Adapter's Python zip examples do:
# uvicorn, starlette and the engine live only in the engine layer. make lambda-check runs this file as Lambda does.
export PYTHONPATH="${LAMBDA_TASK_ROOT:-.}:/opt/python/lib/python3.13/site-packages:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec python -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" --no-access-log app:app
