"""Configuration: the one reader of the environment, a pydantic model cached per process.

A plain model fed from ``os.environ`` rather than pydantic-settings: that package costs ~60 ms of cold start
(it imports every cloud secret-source provider) for what is one dictionary lookup per field here.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["Settings", "get_settings"]


class Settings(BaseModel):
    """Deployed values come from template.yaml's Globals; the local stack sets the same names.
    Each field is read from the upper-case environment variable of the same name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    table_name: str = "responses"
    retention_days: int = Field(default=30, ge=1)
    # The largest request body the API accepts (API Gateway's own limit is 10 MB); larger ones are a 413.
    max_request_bytes: int = Field(default=9 * 1024 * 1024, ge=1024)
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
    # Prompt templates: time and output budget of one rendered field (a template past either is a 400).
    prompt_render_seconds: float = Field(default=1.0, gt=0)
    prompt_max_output_chars: int = Field(default=200_000, ge=1_000)
    # Background runs: the state machine that runs them, and how a worker step and a replaying stream behave.
    state_machine_arn: str = ""
    background_step_seconds: float = Field(default=60.0, gt=0)
    background_flush_seconds: float = Field(default=0.2, ge=0)
    background_poll_seconds: float = Field(default=0.1, gt=0)
    # A follower's poll backs off (doubling) to this while nothing changes, and is fast again once it does.
    background_poll_max_seconds: float = Field(default=1.0, gt=0)
    background_stream_seconds: float = Field(default=870.0, gt=0)
    # How often a running background step reads its record to notice a cancel while the upstream is silent.
    background_cancel_poll_seconds: float = Field(default=0.1, gt=0)
    # A step that fails on a retryable error (upstream 429/5xx/timeout before the turn produced anything, or
    # DynamoDB before the step committed anything) is retried by the state machine this many times.
    background_step_retries: int = Field(default=2, ge=0, le=3)
    # A foreground response's write is retried (it is idempotent) this long before the outcome counts as unknown.
    store_retry_seconds: float = Field(default=30.0, ge=0)
    # DynamoDB client: seconds to wait for an answer and attempts per call (boto's standard retry mode).
    dynamodb_read_timeout_seconds: float = Field(default=10.0, gt=0)
    dynamodb_max_attempts: int = Field(default=3, ge=1)
    default_tenant: str = "default"
    # Which model provider answers: any OpenAI-compatible Chat Completions endpoint, or Amazon Bedrock's
    # Converse API (IAM role credentials; UPSTREAM_BASE_URL then unused).
    upstream_provider: Literal["chat_completions", "bedrock"] = "chat_completions"
    bedrock_region: str = ""
    # Auth: "keys" (hashed keys in the table, the deployed default), "single" (one key from a Secrets Manager
    # secret), "off" (local stack only, when API_KEYS is unset). A deployment never runs with "off".
    auth_mode: Literal["keys", "single", "off"] = "keys"
    api_key_secret_arn: str = ""
    # Seconds the stream function caches a key lookup when it checks keys itself (function URL requests).
    auth_cache_seconds: float = Field(default=300.0, ge=0)
    # Function URL requests (no usage plan in front): the usage plan's limits, enforced by the function per key
    # (engine.limits). 0 turns a limit off. The template passes RateLimit, QuotaLimit and QuotaPeriod.
    function_url_rate_limit: int = Field(default=0, ge=0)
    function_url_quota_limit: int = Field(default=0, ge=0)
    function_url_quota_period: Literal["DAY", "WEEK", "MONTH"] = "MONTH"
    # Unknown request fields, unsupported hosted tools: ignored and logged (default), or a 400 as on OpenAI.
    strict_requests: bool = False
    # Key for reasoning sealed into encrypted_content: a Secrets Manager secret deployed, a plain value locally.
    reasoning_key_secret_arn: str = ""
    reasoning_key: SecretStr | None = None
    # Local only: keys the sealing key rotated from (comma-separated); their blobs still open. Deployed, the
    # secret's AWSPREVIOUS version is the previous key.
    reasoning_previous_keys: SecretStr | None = None
    # Send earlier reasoning back to the upstream (as reasoning_content) for models that accept it.
    upstream_accepts_reasoning: bool = False
    # WebSocket mode (engine.responses.websocket): the management API endpoint of the WebSocket API's stage
    # (PostToConnection), the worker function $default hands each response.create to, and, locally only, where
    # Lambda's Invoke API is (unset deployed: the region's own endpoint).
    websocket_endpoint: str = ""
    websocket_worker_function: str = ""
    lambda_endpoint_url: str = ""
    # A connection answers websocket_connection_limit_reached after this long (the spec's 60 minutes); its
    # state lives at most as long as API Gateway keeps a connection open (2 hours), its DynamoDB TTL.
    websocket_max_connection_seconds: int = Field(default=3600, ge=1)
    websocket_state_ttl_seconds: int = Field(default=7200, ge=1)
    # API Gateway's largest WebSocket message (128 KB); a bigger event is refused with an error event.
    websocket_max_message_bytes: int = Field(default=131_072, ge=1024)
    # file_search: uploaded files (S3), ingestion (a Step Functions execution per file), embeddings, the index.
    files_bucket: str = ""
    max_upload_bytes: int = Field(default=4_000_000, ge=1)  # Lambda's 6 MB invoke limit after base64
    ingest_state_machine_arn: str = ""
    # auto: bedrock with UPSTREAM_PROVIDER=bedrock, upstream when UPSTREAM_BASE_URL is set, else hash (the demo's
    # built-in feature hashing, no model)
    embeddings_provider: Literal["auto", "upstream", "bedrock", "hash"] = "auto"
    embeddings_model: str = ""
    embedding_dimensions: int = Field(default=256, ge=8, le=4096)
    # local: brute force over the store's chunks in memory; s3vectors: Amazon S3 Vectors (VECTOR_BUCKET/VECTOR_INDEX)
    vector_index: Literal["local", "s3vectors"] = "local"
    vector_bucket: str = ""
    vector_index_name: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        """Values from the environment; unset or empty variables keep their defaults (invalid ones raise)."""
        values = {name: os.environ[name.upper()] for name in cls.model_fields if os.environ.get(name.upper())}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
