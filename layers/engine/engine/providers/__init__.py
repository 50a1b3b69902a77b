"""Model providers: one small protocol (``base.Provider``), a Chat Completions client, Amazon Bedrock (Converse)
and the demo model."""

from __future__ import annotations

from functools import lru_cache

from engine.providers.base import ChatRequest, Provider, ProviderError
from engine.settings import get_settings

__all__ = ["ChatRequest", "Provider", "ProviderError", "get_provider"]


@lru_cache(maxsize=1)
def get_provider() -> Provider:
    """The configured upstream (Amazon Bedrock when UPSTREAM_PROVIDER=bedrock, whatever UPSTREAM_BASE_URL says),
    or the labelled demo model when no upstream is set."""
    settings = get_settings()
    if settings.upstream_provider == "bedrock":
        from engine.providers.bedrock import BedrockProvider

        return BedrockProvider(settings)
    if not settings.upstream_base_url:
        from engine.providers.demo import DemoProvider

        return DemoProvider()
    from engine.providers.chat_completions import ChatCompletionsProvider

    return ChatCompletionsProvider(settings)
