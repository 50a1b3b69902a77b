"""Model providers: one small protocol (``base.Provider``), a Chat Completions client and the demo model."""

from __future__ import annotations

from functools import lru_cache

from ..settings import get_settings
from .base import ChatRequest, Provider, ProviderError

__all__ = ["ChatRequest", "Provider", "ProviderError", "get_provider"]


@lru_cache(maxsize=1)
def get_provider() -> Provider:
    """The configured upstream, or the labelled demo model when no upstream is set."""
    settings = get_settings()
    if not settings.upstream_base_url:
        from .demo import DemoProvider

        return DemoProvider()
    from .chat_completions import ChatCompletionsProvider

    return ChatCompletionsProvider(settings)
