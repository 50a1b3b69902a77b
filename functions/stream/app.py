"""The streaming function: ``POST /v1/responses`` and ``GET /v1/responses/{response_id}``, an ASGI app run by
Lambda Web Adapter (``run.sh``).

Both answer JSON, or SSE when asked to stream (``stream`` in the body, ``?stream=true`` on GET, which replays
a background response). GET lives here, not in a buffered function, because API Gateway cannot route on the
query string. The app is reachable through the REST API (``ResponseTransferMode: RESPONSE_STREAM``) and the
function URL (``InvokeMode: RESPONSE_STREAM``), which may or may not keep the ``/v1`` stage prefix, so both
forms are routed.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from engine.api.asgi import create, retrieve


async def health(_: Request) -> Response:
    """Lambda Web Adapter's readiness check (``AWS_LWA_READINESS_CHECK_PATH``)."""
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/v1/responses", create, methods=["POST"]),
        Route("/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
)
