"""``POST /v1/responses/compact``: the context a create would send (``input`` and/or ``previous_response_id``),
summarized by the upstream model into the retained user messages plus one sealed ``compaction`` item.

Nothing is stored: the answer is a window the client sends back as input (by value) to continue. The context
is resolved exactly as a create resolves it (chains, item references, sealed reasoning and earlier compaction
items), so every 4xx a create would give comes before the upstream is called.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from engine.errors import APIError, InvalidRequestError, RateLimitError, UpstreamError, from_validation_errors
from engine.ids import new_id
from engine.models.compaction import CompactedResponse, ResponseCompactParams
from engine.models.request import ResponseCreateParams
from engine.models.response import InputTokensDetails, OutputTokensDetails, ResponseUsage
from engine.observability import logger
from engine.providers import ProviderError
from engine.responses.compaction import compact_items
from engine.responses.create import prepare_create

__all__ = ["compact_response"]

# the compact body's fields that mean the same on a create
_CREATE_FIELDS = ("model", "input", "instructions", "previous_response_id", "prompt_cache_key", "service_tier")


def _http_error(exc: ProviderError) -> APIError:
    """An upstream failure of this buffered endpoint as the HTTP error OpenAI would answer."""
    if exc.code == "rate_limit_exceeded" or exc.status == 429:
        return RateLimitError(exc.message, code="rate_limit_exceeded")
    if exc.code == "invalid_prompt" or (exc.status is not None and 400 <= exc.status < 500):
        return InvalidRequestError(exc.message, code=exc.code)
    return UpstreamError(exc.message, code="upstream_error")


async def compact_response(body: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The compacted response for this request body; raises ``APIError`` (4xx, or 429/502 from the upstream)."""
    try:
        params = ResponseCompactParams.model_validate(body)
        create = ResponseCreateParams.model_validate(
            {key: body[key] for key in _CREATE_FIELDS if key in body}
            | {"input": body.get("input") or [], "store": False, "stream": False, "background": False}
        )
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from None
    if params.model_extra:
        logger.info("ignoring unknown compact fields", extra={"fields": sorted(params.model_extra)})
    run = await prepare_create(create, tenant)
    if not run.context_items:
        raise InvalidRequestError(
            "There is nothing to compact: give 'input' and/or 'previous_response_id'.", param="input"
        )
    try:
        compaction = await compact_items(
            provider=run.provider,
            chat=run.chat,
            instructions=params.instructions,
            items=run.context_items,
            tenant=tenant,
            summaries=run.summaries,
            model_name=run.tools.model_name,
        )
    except ProviderError as exc:
        logger.warning("compaction upstream failed", extra={"code": exc.code, "error": exc.message})
        raise _http_error(exc) from None
    usage = compaction.usage
    answer = CompactedResponse(
        id=new_id("resp"),
        created_at=int(time.time()),
        output=[*compaction.retained, compaction.item.model_dump()],
        usage=ResponseUsage(
            input_tokens=usage.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens),
            output_tokens=usage.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
            total_tokens=usage.input_tokens + usage.output_tokens,
        ),
    )
    return answer.model_dump()
