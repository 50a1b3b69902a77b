"""/v1/files — upload (multipart/form-data), list, retrieve, delete, content. One function for the resource:
the routes share their imports and a warm container."""

import base64
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import metrics, tracer
from engine.retrieval import files

app = make_rest_resolver()


def _tenant() -> str:
    return tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)


@app.post("/files")
@tracer.capture_method(capture_response=False)
def upload() -> dict[str, Any]:
    event = app.current_event
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8", "surrogateescape")
    filename, data, fields = files.parse_upload(event.headers.get("content-type") or "", body)
    uploaded = files.upload_file(_tenant(), filename, data, fields)
    metrics.add_metric(name="FilesUploaded", unit=MetricUnit.Count, value=1)
    return uploaded.model_dump(mode="json")


@app.get("/files")
@tracer.capture_method(capture_response=False)
def list_files(
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(min_length=1)] = None,
    purpose: Annotated[str | None, Query(min_length=1)] = None,
) -> dict[str, Any]:
    return files.list_files(_tenant(), limit=limit, order=order, after=after, purpose=purpose).model_dump(mode="json")


@app.get("/files/<file_id>")
@tracer.capture_method(capture_response=False)
def retrieve(file_id: str) -> dict[str, Any]:
    return files.get_file(_tenant(), file_id).model_dump(mode="json")


@app.delete("/files/<file_id>")
@tracer.capture_method(capture_response=False)
def delete(file_id: str) -> dict[str, Any]:
    return files.delete_file(_tenant(), file_id).model_dump(mode="json")


@app.get("/files/<file_id>/content")
@tracer.capture_method(capture_response=False)
def content(file_id: str):  # type: ignore[no-untyped-def]
    # No return annotation on purpose: with one, Powertools' response validation would serialise the bytes as
    # JSON. Bytes are answered base64 (isBase64Encoded); API Gateway decodes them for binary media types.
    return Response(
        status_code=200, content_type="application/octet-stream", body=files.file_content(_tenant(), file_id)
    )


lambda_handler = rest_handler(app, json_bodies=False)  # uploads are multipart: the route parses its own body
