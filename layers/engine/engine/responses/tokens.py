"""``POST /v1/responses/input_tokens``: how many tokens the context of a create would be.

Counted on exactly what a create would send upstream (chain, conversation, instructions, tools), with a
documented estimate: no tokenizer ships for arbitrary upstream models, and the ones that exist fetch their
vocabularies at run time, which a Lambda in a closed VPC cannot. Text counts one token per 4 characters
(OpenAI's rule of thumb), each message 3 more, each image 85 (a low-detail tile), tools as their JSON
(``engine.responses.estimate``). A compaction item counts as the summary the upstream is shown in its place.
"""

from __future__ import annotations

from typing import Any

from engine.models.request import ResponseCreateParams
from engine.responses.create import prepare_create
from engine.responses.estimate import estimate_tokens
from engine.responses.input import to_chat_messages

__all__ = ["INPUT_TOKENS_DEFAULTS", "INPUT_TOKENS_OVERRIDES", "count_input_tokens", "estimate_tokens"]


# What an input_tokens body may leave out, and what it cannot ask for (nothing is stored, streamed or queued).
INPUT_TOKENS_DEFAULTS: dict[str, Any] = {"model": "input-tokens", "input": []}
INPUT_TOKENS_OVERRIDES: dict[str, Any] = {"store": False, "stream": False, "background": False}


async def count_input_tokens(params: ResponseCreateParams, tenant: str) -> int:
    """Tokens of the context a create with these parameters would send (parsed by the create's own parser
    with :data:`INPUT_TOKENS_DEFAULTS` and :data:`INPUT_TOKENS_OVERRIDES`)."""
    run = await prepare_create(params, tenant)
    offered, _ = run.tools.offer(params.tool_choice)
    messages = to_chat_messages(params.instructions, run.context_items, run.tools.model_name, summaries=run.summaries)
    return estimate_tokens(messages, offered)
