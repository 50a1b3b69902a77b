"""/v1/vector_stores/{id}/files and /file_batches — add, list, retrieve, update, remove files; file batches."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.models.files import FileBatchCreateParams, VectorStoreFileCreateParams, VectorStoreFileUpdateParams
from engine.observability import metrics, tracer
from engine.retrieval import vector_stores

app = make_rest_resolver()
Status = Literal["in_progress", "completed", "failed", "cancelled"]


def _tenant() -> str:
    return tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)


@app.post("/vector_stores/<vector_store_id>/files")
@tracer.capture_method(capture_response=False)
def add(vector_store_id: str, body: Annotated[VectorStoreFileCreateParams, Body()]) -> dict[str, Any]:
    added = vector_stores.add_file(_tenant(), vector_store_id, body)
    metrics.add_metric(name="VectorStoreFilesAdded", unit=MetricUnit.Count, value=1)
    return added.model_dump(mode="json")


@app.get("/vector_stores/<vector_store_id>/files")
@tracer.capture_method(capture_response=False)
def list_files(
    vector_store_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(min_length=1)] = None,
    before: Annotated[str | None, Query(min_length=1)] = None,
    filter: Annotated[Status | None, Query()] = None,  # noqa: A002 - OpenAI's parameter name
) -> dict[str, Any]:
    page = vector_stores.list_store_files(
        _tenant(), vector_store_id, limit=limit, order=order, after=after, before=before, status=filter
    )
    return page.model_dump(mode="json")


@app.get("/vector_stores/<vector_store_id>/files/<file_id>")
@tracer.capture_method(capture_response=False)
def retrieve(vector_store_id: str, file_id: str) -> dict[str, Any]:
    return vector_stores.get_store_file(_tenant(), vector_store_id, file_id).model_dump(mode="json")


@app.post("/vector_stores/<vector_store_id>/files/<file_id>")
@tracer.capture_method(capture_response=False)
def update(vector_store_id: str, file_id: str, body: Annotated[VectorStoreFileUpdateParams, Body()]) -> dict[str, Any]:
    updated = vector_stores.update_store_file(_tenant(), vector_store_id, file_id, body.attributes)
    return updated.model_dump(mode="json")


@app.delete("/vector_stores/<vector_store_id>/files/<file_id>")
@tracer.capture_method(capture_response=False)
def remove(vector_store_id: str, file_id: str) -> dict[str, Any]:
    return vector_stores.remove_file(_tenant(), vector_store_id, file_id).model_dump(mode="json")


@app.post("/vector_stores/<vector_store_id>/file_batches")
@tracer.capture_method(capture_response=False)
def create_batch(vector_store_id: str, body: Annotated[FileBatchCreateParams, Body()]) -> dict[str, Any]:
    return vector_stores.create_batch(_tenant(), vector_store_id, body).model_dump(mode="json")


@app.get("/vector_stores/<vector_store_id>/file_batches/<batch_id>")
@tracer.capture_method(capture_response=False)
def get_batch(vector_store_id: str, batch_id: str) -> dict[str, Any]:
    return vector_stores.get_batch(_tenant(), vector_store_id, batch_id).model_dump(mode="json")


@app.get("/vector_stores/<vector_store_id>/file_batches/<batch_id>/files")
@tracer.capture_method(capture_response=False)
def list_batch_files(
    vector_store_id: str,
    batch_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(min_length=1)] = None,
    before: Annotated[str | None, Query(min_length=1)] = None,
    filter: Annotated[Status | None, Query()] = None,  # noqa: A002 - OpenAI's parameter name
) -> dict[str, Any]:
    page = vector_stores.list_batch_files(
        _tenant(), vector_store_id, batch_id, limit=limit, order=order, after=after, before=before, status=filter
    )
    return page.model_dump(mode="json")


lambda_handler = rest_handler(app)
