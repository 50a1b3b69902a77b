"""/v1/vector_stores — create, list, retrieve, update, delete, search. One function for the resource."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.models.files import VectorStoreCreateParams, VectorStoreSearchParams, VectorStoreUpdateParams
from engine.observability import metrics, tracer
from engine.retrieval import vector_stores

app = make_rest_resolver()


def _tenant() -> str:
    return tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)


@app.post("/vector_stores")
@tracer.capture_method(capture_response=False)
def create(body: Annotated[VectorStoreCreateParams, Body()]) -> dict[str, Any]:
    store = vector_stores.create_store(_tenant(), body)
    metrics.add_metric(name="VectorStoresCreated", unit=MetricUnit.Count, value=1)
    return store.model_dump(mode="json")


@app.get("/vector_stores")
@tracer.capture_method(capture_response=False)
def list_stores(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(min_length=1)] = None,
    before: Annotated[str | None, Query(min_length=1)] = None,
) -> dict[str, Any]:
    page = vector_stores.list_stores(_tenant(), limit=limit, order=order, after=after, before=before)
    return page.model_dump(mode="json")


@app.get("/vector_stores/<vector_store_id>")
@tracer.capture_method(capture_response=False)
def retrieve(vector_store_id: str) -> dict[str, Any]:
    return vector_stores.get_store(_tenant(), vector_store_id).model_dump(mode="json")


@app.post("/vector_stores/<vector_store_id>")
@tracer.capture_method(capture_response=False)
def update(vector_store_id: str, body: Annotated[VectorStoreUpdateParams, Body()]) -> dict[str, Any]:
    return vector_stores.update_store(_tenant(), vector_store_id, body).model_dump(mode="json")


@app.delete("/vector_stores/<vector_store_id>")
@tracer.capture_method(capture_response=False)
def delete(vector_store_id: str) -> dict[str, Any]:
    return vector_stores.delete_store(_tenant(), vector_store_id).model_dump(mode="json")


@app.post("/vector_stores/<vector_store_id>/search")
@tracer.capture_method(capture_response=False)
def search(vector_store_id: str, body: Annotated[VectorStoreSearchParams, Body()]) -> dict[str, Any]:
    page = vector_stores.search_store(_tenant(), vector_store_id, body)
    metrics.add_metric(name="VectorStoreSearches", unit=MetricUnit.Count, value=1)
    return page.model_dump(mode="json")


lambda_handler = rest_handler(app)
