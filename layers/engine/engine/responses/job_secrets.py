"""MCP credentials of a background run, sealed while they wait in the job row.

A background run must keep its request until the worker runs it, and an MCP tool's ``authorization`` and
``headers`` are credentials: they are taken out of the stored request and kept as one AES-GCM blob
(``engine.sealing``, purpose ``credentials``, bound to the tenant), so the table never holds them in plaintext.
The worker puts them back just before it validates the request.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

from engine.sealing import open_sealed, seal

__all__ = ["open_job_params", "seal_job_params"]

_SECRET_FIELDS = ("authorization", "headers")


def seal_job_params(params: dict[str, Any], tenant: str) -> dict[str, Any]:
    """A copy of the request's JSON whose MCP tools carry no credentials, plus ``sealed_credentials`` if any."""
    tools = params.get("tools")
    if not isinstance(tools, list):
        return params
    secrets: dict[str, dict[str, Any]] = {}
    stripped: list[Any] = []
    for index, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == "mcp" and any(f in tool for f in _SECRET_FIELDS):
            secrets[str(index)] = {f: tool[f] for f in _SECRET_FIELDS if f in tool}
            tool = {k: v for k, v in tool.items() if k not in _SECRET_FIELDS}
        stripped.append(tool)
    if not secrets:
        return params
    return {**params, "tools": stripped, "sealed_credentials": seal(to_json(secrets).decode(), tenant, "credentials")}


def open_job_params(params: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The request's JSON with its MCP credentials back in place (the inverse of ``seal_job_params``)."""
    blob = params.get("sealed_credentials")
    if not blob:
        return params
    secrets = dict(from_json(open_sealed(str(blob), tenant, "credentials", param="tools")))
    tools = list(params["tools"])
    for index, fields in secrets.items():
        tools[int(index)] = {**tools[int(index)], **fields}
    return {k: v for k, v in params.items() if k != "sealed_credentials"} | {"tools": tools}
