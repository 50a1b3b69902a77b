"""Prompt template versions in the responses table.

``pk = PROMPT#{id}``: ``sk = V#{version:06d}`` per immutable version (its JSON), and ``sk = META`` (default
version, latest version number, created_at, and ``gsi1pk = PROMPTS`` so the owner's ``list`` is one Query on
``gsi1``, not a scan). No ``expires_at``: templates belong to the deployment and live until replaced.
"""

from __future__ import annotations

import json
import time
from typing import Any

from engine.storage.table import DynamoTable, Row

__all__ = ["PROMPTS_PARTITION", "DynamoPromptStore", "PromptNotFound"]

PROMPTS_PARTITION = "PROMPTS"  # gsi1pk of every prompt's META
_META = "META"


class PromptNotFound(LookupError):
    pass


def _key(prompt_id: str, sk: str = _META) -> Row:
    return {"pk": f"PROMPT#{prompt_id}", "sk": sk}


def _sk(version: int) -> str:
    return f"V#{version:06d}"


def _summary(prompt_id: str, row: Row) -> dict[str, Any]:
    return {
        "id": prompt_id,
        "default_version": int(row.get("default_version", 0)),
        "latest_version": int(row["latest_version"]),
        "created_at": int(row["created_at"]),
    }


class DynamoPromptStore:
    """``PromptStore`` on the responses table (see the module docstring for the layout)."""

    def __init__(self, table_name: str) -> None:
        self.table = DynamoTable(table_name)
        # versions are immutable, so a version once read is kept for the life of the process
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}

    def meta(self, prompt_id: str) -> dict[str, Any] | None:
        row = self.table.get(_key(prompt_id))
        return _summary(prompt_id, row) if row is not None else None

    def version(self, prompt_id: str, version: int) -> dict[str, Any] | None:
        cached = self._versions.get((prompt_id, version))
        if cached is not None:
            return cached
        row = self.table.get(_key(prompt_id, _sk(version)))
        if row is None:
            return None
        template = dict(json.loads(row["template"]))
        self._versions[(prompt_id, version)] = template
        return template

    def resolve(self, prompt_id: str, version: int | None) -> tuple[int, dict[str, Any]]:
        """The version (the default one when ``version`` is None) and its template; ``PromptNotFound``."""
        if version is None:
            meta = self.meta(prompt_id)
            if meta is None:
                raise PromptNotFound(f"Prompt with id '{prompt_id}' not found.")
            version = int(meta["default_version"])
        template = self.version(prompt_id, version)
        if template is None:
            if self.meta(prompt_id) is None:
                raise PromptNotFound(f"Prompt with id '{prompt_id}' not found.")
            raise PromptNotFound(f"Version '{version}' of prompt '{prompt_id}' not found.")
        return version, template

    def create(self, prompt_id: str, template: dict[str, Any], make_default: bool = False) -> int:
        """Store ``template`` as the next version of ``prompt_id``; the first version becomes the default."""
        now = int(time.time())
        updated = self.table.update(
            _key(prompt_id),
            "SET created_at = if_not_exists(created_at, :now), gsi1pk = :list, gsi1sk = :id ADD latest_version :one",
            values={":now": now, ":one": 1, ":list": PROMPTS_PARTITION, ":id": prompt_id},
            returns="ALL_NEW",
        )
        assert updated is not None
        version = int(updated["latest_version"])
        self.table.put(
            {**_key(prompt_id, _sk(version)), "template": json.dumps(template), "created_at": now},
            condition="attribute_not_exists(pk)",
        )
        if make_default or "default_version" not in updated:
            self.set_default(prompt_id, version)
        return version

    def set_default(self, prompt_id: str, version: int) -> None:
        if self.version(prompt_id, version) is None:
            raise PromptNotFound(f"Version '{version}' of prompt '{prompt_id}' not found.")
        self.table.update(
            _key(prompt_id),
            "SET default_version = :v, gsi1pk = :list, gsi1sk = :id",
            condition="attribute_exists(pk)",
            values={":v": version, ":list": PROMPTS_PARTITION, ":id": prompt_id},
        )

    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt's META, by id (one paged Query on ``gsi1``; a prompt made before the index keys existed
        is listed once it gets a new version or default)."""
        rows = self.table.query("gsi1pk = :p", {":p": PROMPTS_PARTITION}, index="gsi1")
        return [_summary(str(row["pk"]).removeprefix("PROMPT#"), row) for row in rows]
