"""The streaming function: ``POST /v1/responses`` and ``GET /v1/responses/{response_id}``, an ASGI app run by
Lambda Web Adapter (``run.sh``).

Both answer JSON, or SSE when asked to stream (``stream`` in the body, ``?stream=true`` on GET, which replays
a background response). GET lives here, not in a buffered function, because API Gateway cannot route on the
query string. The app is reachable through the REST API (``ResponseTransferMode: RESPONSE_STREAM``) and the
function URL (``InvokeMode: RESPONSE_STREAM``); its routes are in ``engine.api.asgi.build_app``.
"""

from engine.api.asgi import build_app

app = build_app()
