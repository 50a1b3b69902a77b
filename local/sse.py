"""Server-sent events read back: the one SSE parser of the tests and ``make bench``.

A stream is cut into frames (the lines up to a blank line) the way the WHATWG event-stream rules do it: lines
end with ``\\n``, ``\\r\\n`` or ``\\r`` (also split across chunks), comment lines (``: keep-alive``) are dropped
and a block of only comments is no frame. A frame keeps its raw field lines, so framing checks can look at
them, and offers the parsed ``event`` name, the ``data`` (several ``data:`` lines joined with ``\\n``) and the
JSON of the data. The engine's own upstream decoder (``engine.providers.sse``) only needs the data of an
event, and stays in the engine; this one is for reading what the engine sends.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SseFrame", "SseParser", "frames"]


@dataclass(frozen=True, slots=True)
class SseFrame:
    """One event block as received: its field lines, comments left out."""

    lines: tuple[str, ...]

    def fields(self, name: str) -> list[str]:
        """The values of the ``name:`` lines, in order (one leading space removed, as the rules say)."""
        prefix = f"{name}:"
        return [line[len(prefix) :].removeprefix(" ") for line in self.lines if line.startswith(prefix)]

    @property
    def event(self) -> str | None:
        """The ``event:`` name (the last one, as a browser would take it), or None."""
        names = self.fields("event")
        return names[-1] if names else None

    @property
    def data(self) -> str:
        return "\n".join(self.fields("data"))

    @property
    def done(self) -> bool:
        """Whether this is the ``data: [DONE]`` frame that ends an OpenAI-style stream."""
        return self.data == "[DONE]"

    def json(self) -> Any:
        return json.loads(self.data)


def frames(lines: Iterable[str]) -> Iterator[SseFrame]:
    """The frames of a body read line by line (``httpx.Response.iter_lines``), each as soon as its blank line is
    read; a last block without its blank line is yielded too (so a check can see it)."""
    block: list[str] = []
    for line in lines:
        if line:
            if not line.startswith(":"):
                block.append(line)
            continue
        if block:
            yield SseFrame(tuple(block))
            block = []
    if block:
        yield SseFrame(tuple(block))


class SseParser:
    """The same, fed bytes in chunks of any size as they arrive (``feed``), with ``close`` at the end."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # a character may be split across chunks
        self._partial = ""
        self._after_cr = False
        self._block: list[str] = []

    def feed(self, chunk: bytes) -> list[SseFrame]:
        """The frames that ``chunk`` completes."""
        text = self._partial + self._decoder.decode(chunk)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split across two chunks
        self._after_cr = text.endswith("\r")
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._partial = lines.pop()
        out: list[SseFrame] = []
        for line in lines:
            if line:
                if not line.startswith(":"):
                    self._block.append(line)
            elif self._block:
                out.append(SseFrame(tuple(self._block)))
                self._block = []
        return out

    def close(self) -> list[SseFrame]:
        """At the end of the body: a last block no blank line closed, if any."""
        rest = self._partial + self._decoder.decode(b"", final=True)
        if rest and not rest.startswith(":"):
            self._block.append(rest)
        self._partial = ""
        block, self._block = self._block, []
        return [SseFrame(tuple(block))] if block else []
