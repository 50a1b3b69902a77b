"""Configuration: the one reader of the environment (a pydantic-settings model), cached per process."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Deployed values come from template.yaml's Globals; the local stack sets the same names."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    table_name: str = "responses"
    retention_days: int = Field(default=30, ge=1)
    # Empty base URL means the built-in demo model answers.
    upstream_base_url: str = ""
    # Local/dev only: a deployment passes the key through Secrets Manager (below), never in plain env.
    upstream_api_key: SecretStr | None = None
    upstream_api_key_secret_arn: str = ""
    upstream_timeout_seconds: float = Field(default=120.0, gt=0)
    upstream_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # The longest chain of previous_response_id hops a request may load.
    max_chain_length: int = Field(default=1000, ge=1)
    # Model turns in one response (each MCP round trip is one more turn).
    max_turns: int = Field(default=16, ge=1, le=200)
    # MCP: a deployment refuses servers on loopback/private/link-local addresses; the local stack allows them.
    mcp_allow_private_networks: bool = False
    mcp_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    mcp_call_timeout_seconds: float = Field(default=60.0, gt=0)
    mcp_max_output_bytes: int = Field(default=100_000, ge=1_000)
    default_tenant: str = "default"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
