"""Amazon Bedrock as the model, through the Converse API (``ConverseStream``): ``convert`` (ChatRequest → Converse
request), ``decode`` (stream events → provider events), ``errors`` (Bedrock failures → ``ProviderError``) and
``client`` (the provider: the lazily created client and the thread that reads each stream)."""

from __future__ import annotations

from engine.providers.bedrock.client import BedrockProvider
from engine.providers.bedrock.convert import converse_request

__all__ = ["BedrockProvider", "converse_request"]
