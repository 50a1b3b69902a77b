"""Ingest one file into one vector store (parse, chunk, embed, index): the task of IngestStateMachine, never
called by API Gateway. Input and output are small JSON (ids in, a summary out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.observability import inject_invocation_context, tracer
from engine.retrieval.ingest import ingest_file

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@inject_invocation_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return ingest_file(event)
