"""``POST /v1/responses/input_tokens``: how many tokens the context of a create would be.

Counted on exactly what a create would send upstream (chain, conversation, instructions, tools), with a
documented estimate: no tokenizer ships for arbitrary upstream models, and the ones that exist fetch their
vocabularies at run time, which a Lambda in a closed VPC cannot. Text counts one token per 4 characters
(OpenAI's rule of thumb), each message 3 more, each image 85 (a low-detail tile), tools as their JSON
(``engine.responses.estimate``). A compaction item counts as the summary the upstream is shown in its place.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from engine.errors import from_validation_errors
from engine.models.request import ResponseCreateParams
from engine.responses.create import prepare_create
from engine.responses.estimate import estimate_tokens
from engine.responses.input import to_chat_messages

__all__ = ["count_input_tokens", "estimate_tokens"]


async def count_input_tokens(body: dict[str, Any], tenant: str) -> int:
    """Tokens of the context a create with this body would send (every field optional, as OpenAI's)."""
    request = {"model": "input-tokens", "input": [], **body, "store": False, "stream": False, "background": False}
    try:
        params = ResponseCreateParams.model_validate(request)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from None
    run = await prepare_create(params, tenant)
    offered, _ = run.tools.offer(params.tool_choice)
    messages = to_chat_messages(params.instructions, run.context_items, run.tools.model_name, summaries=run.summaries)
    return estimate_tokens(messages, offered)
