"""The ``file_search`` tool: the model is offered a ``file_search(queries)`` function, this server runs the search
over the request's vector stores (``engine.retrieval``) and shows the model numbered sources; the answer's
``[n]`` markers become ``file_citation`` annotations.

Sources are numbered across the response's ``file_search_call`` items in output order (the first call's results
are 1..k, the next call's continue from k+1), so a marker always names one file. Results are kept in the item
while the response runs (the model sees them on the next turn); the finished response keeps them only with
``include=["file_search_call.results"]``, as OpenAI returns them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.models.files import Filter, RankingOptions, VectorStoreSearchParams
from engine.tools.function import validate_tool

__all__ = [
    "FUNCTION_NAME",
    "FileSearchSpec",
    "chat_function",
    "check_stores",
    "citations",
    "parse_file_search",
    "result_text",
    "run_search",
    "strip_results",
]

FUNCTION_NAME = "file_search"
_MARKER = re.compile(r"\[(\d{1,3})\]")


class FileSearchSpec(BaseModel):
    """``{"type": "file_search", "vector_store_ids": [...], "max_num_results", "filters", "ranking_options"}``."""

    # Built when a request first names the tool (with engine.models.files' filters), not at cold start.
    model_config = ConfigDict(strict=True, extra="ignore", defer_build=True)

    type: str = "file_search"
    vector_store_ids: list[str] = Field(min_length=1, max_length=2)
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Filter | None = None
    ranking_options: RankingOptions | None = None


def parse_file_search(raw: dict[str, Any], index: int) -> FileSearchSpec:
    return validate_tool(FileSearchSpec, raw, index)


def chat_function(name: str = FUNCTION_NAME) -> dict[str, Any]:
    """The function the model is offered for the tool."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": (
                "Search the user's uploaded files for passages relevant to the queries. Cite a source you use "
                "with its number in square brackets, like [1]."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "queries": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "One or more search queries.",
                    }
                },
                "required": ["queries"],
            },
        },
    }


async def check_stores(tenant: str, spec: FileSearchSpec, index: int) -> None:
    """Every named store is the tenant's and live (else the 404 a direct search would give)."""
    from engine.errors import NotFoundError
    from engine.retrieval.vector_stores import get_store, store_not_found

    param = f"tools[{index}].vector_store_ids"
    for store_id in spec.vector_store_ids:
        try:
            store = await asyncio.to_thread(get_store, tenant, store_id)
        except NotFoundError:
            raise store_not_found(store_id, param) from None
        if store.status == "expired":
            raise store_not_found(store_id, param)


def queries_of(arguments: str) -> list[str]:
    """The model's queries (``{"queries": [...]}``, or ``{"query": "..."}`` from models that simplify)."""
    from pydantic_core import from_json

    try:
        parsed = from_json(arguments or "{}")
    except ValueError:
        return [arguments.strip()] if arguments.strip() else []
    if not isinstance(parsed, dict):
        return []
    found = parsed.get("queries", parsed.get("query"))
    values = found if isinstance(found, list) else [found]
    return [str(q) for q in values if isinstance(q, str) and q.strip()]


async def run_search(tenant: str, spec: FileSearchSpec, queries: list[str]) -> list[dict[str, Any]]:
    """The search the tool asked for, as ``file_search_call.results`` entries."""
    from engine.retrieval.vector_stores import search_stores

    params = VectorStoreSearchParams(
        query=queries, filters=spec.filters, max_num_results=spec.max_num_results, ranking_options=spec.ranking_options
    )
    page = await asyncio.to_thread(search_stores, tenant, spec.vector_store_ids, params)
    return [
        {
            "file_id": hit.file_id,
            "filename": hit.filename,
            "score": hit.score,
            "attributes": hit.attributes or {},
            "text": hit.content[0].text,
        }
        for hit in page.data
    ]


def sources(items: list[Any]) -> list[dict[str, Any]]:
    """The numbered sources of a response: every result of its file_search_call items, in order (source n is
    element n-1)."""
    out: list[dict[str, Any]] = []
    for item in items:
        data = item if isinstance(item, dict) else item.model_dump()
        if data.get("type") == "file_search_call":
            out.extend(data.get("results") or [])
    return out


def result_text(item: dict[str, Any], first_number: int) -> str:
    """What the model is shown of one search: its numbered sources (or that there were none)."""
    if item.get("status") == "failed":
        return "The file search failed."
    results = item.get("results")
    if results is None:
        return "File search results are not kept after the response that ran the search."
    if not results:
        return "No results were found in the files."
    lines = ["Results of the file search. Cite a source you use as [n]."]
    for number, result in enumerate(results, start=first_number):
        lines.append(f"\n[{number}] {result['filename']} ({result['file_id']}):\n{result['text']}")
    return "\n".join(lines)


def citations(text: str, numbered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``file_citation`` annotations for the ``[n]`` markers in ``text`` that name a source (``index``: where the
    marker is in the text)."""
    out: list[dict[str, Any]] = []
    for match in _MARKER.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(numbered):
            source = numbered[number - 1]
            out.append(
                {
                    "type": "file_citation",
                    "file_id": source["file_id"],
                    "filename": source["filename"],
                    "index": match.start(),
                }
            )
    return out


def strip_results(items: list[Any]) -> None:
    """Drop the results of finished file_search_call items (the response did not include them)."""
    for item in items:
        if getattr(item, "type", None) == "file_search_call":
            item.results = None
