"""Reusable prompt templates (``prompt: {id, version, variables}`` on create)."""

from __future__ import annotations

from .errors import InvalidRequestError
from .models.request import ResponseCreateParams

__all__ = ["apply_prompt"]


async def apply_prompt(params: ResponseCreateParams, tenant: str) -> ResponseCreateParams:
    """The request with its prompt template applied (request fields override the template's)."""
    if params.prompt is not None:
        raise InvalidRequestError("Prompt templates are not available on this server yet.", param="prompt")
    return params
