"""POST /v1/responses — the streaming function: an ASGI app run by Lambda Web Adapter (``run.sh``).

Answers JSON, or SSE when ``stream`` is true. The same app is reachable through the REST API
(``ResponseTransferMode: RESPONSE_STREAM``) and the function URL (``InvokeMode: RESPONSE_STREAM``), which may
or may not keep the ``/v1`` stage prefix in the path, so both forms are routed.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from engine.asgi import create


async def health(_: Request) -> Response:
    """Lambda Web Adapter's readiness check (``AWS_LWA_READINESS_CHECK_PATH``)."""
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/v1/responses", create, methods=["POST"]),
        Route("/responses", create, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
)
