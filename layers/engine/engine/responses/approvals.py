"""``mcp_approval_response`` inputs: only what this server asked, for this tenant, may run, and never more than
the request's ``allowed_tools`` permit.

The approval request an answer names must be one this server issued: an item of the stored context (the chain
of ``previous_response_id`` or the conversation, both read for the tenant), or, sent back by value (stateless
clients), one that matches a stored item of the tenant's in every field that decides what runs (server, tool,
arguments). A request the client wrote itself (say, for a tool outside ``allowed_tools``, with an approval of
its own) is a 400; so is an approval whose tool the request's ``tools`` no longer allow.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.errors import InvalidRequestError
from engine.responses.loop import Approval
from engine.storage import ResponseStore
from engine.tools import ToolSet

__all__ = ["check_approvals"]

# What decides which call an approval runs.
_CALL_FIELDS = ("type", "id", "server_label", "name", "arguments")


def _same_call(issued: dict[str, Any], sent: dict[str, Any]) -> bool:
    return all(issued.get(key) == sent.get(key) for key in _CALL_FIELDS)


async def check_approvals(
    context: list[dict[str, Any]], new: list[dict[str, Any]], tools: ToolSet, tenant: str, store: ResponseStore
) -> list[Approval]:
    """The request's approvals, each with the approval request this server issued (``context``: the stored
    chain and conversation; ``new``: this request's input items)."""
    issued = {i["id"]: i for i in context if i.get("type") == "mcp_approval_request" and i.get("id")}
    by_value = {i["id"]: i for i in new if i.get("type") == "mcp_approval_request" and i.get("id")}
    approvals: list[Approval] = []
    for index, item in enumerate(new):
        if item.get("type") != "mcp_approval_response":
            continue
        request_id = str(item["approval_request_id"])
        request = issued.get(request_id)
        if request is None and request_id in by_value:
            stored = await asyncio.to_thread(store.find_item, tenant, request_id)
            if stored is None or not _same_call(stored, by_value[request_id]):
                raise InvalidRequestError(
                    f"The approval request '{request_id}' was not issued by this server: an approval can only answer "
                    "a request a response of yours made (send it back unchanged, or use previous_response_id).",
                    param=f"input[{index}]",
                    code="invalid_approval_request",
                )
            request = stored
        if request is None:
            raise InvalidRequestError(f"No approval request found with id '{request_id}'.", param=f"input[{index}]")
        server = tools.servers.get(str(request.get("server_label")))
        if server is None:
            raise InvalidRequestError(
                f"The approved call needs MCP server '{request.get('server_label')}' in 'tools'.", param="tools"
            )
        if server.allowed is not None and request.get("name") not in server.allowed:
            raise InvalidRequestError(
                f"The approved call is to tool '{request.get('name')}', which the 'allowed_tools' of MCP server "
                f"'{request.get('server_label')}' do not include: an approval never widens them.",
                param=f"input[{index}]",
            )
        approvals.append(Approval(request, bool(item["approve"])))
    return approvals
