#!/bin/bash
# Lambda Web Adapter starts this (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and proxies invocations to the port.
exec python -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" --no-access-log app:app
