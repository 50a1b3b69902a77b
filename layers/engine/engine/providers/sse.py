"""An incremental Server-Sent Events decoder for upstream streams (the WHATWG event-stream rules).

Bytes go in as they arrive, in chunks of any size; ``data`` payloads come out once their event is complete
(a blank line). It handles what line-based readers get wrong: an event whose ``data`` spans several lines
(joined with ``\\n``), ``\\r\\n``/``\\r``/``\\n`` endings (also split across chunks), comment lines
(``: keep-alive``), and lines of any length up to ``max_event_bytes`` (aiohttp's ``readline`` stops at 64 KiB
with ``LineTooLong``). ``saw_data`` tells the caller whether the last chunk carried anything but comments, so
an idle timeout can count silence between data rather than between keep-alive comments.
"""

from __future__ import annotations

__all__ = ["EventTooLarge", "SSEDecoder"]


class EventTooLarge(ValueError):
    """One event grew past the decoder's limit."""


class SSEDecoder:
    """Feed bytes with :meth:`feed`; get the ``data`` of every complete event, in order."""

    def __init__(self, max_event_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_event_bytes = max_event_bytes
        self._line = bytearray()
        self._data: list[bytes] = []
        self._size = 0
        self._after_cr = False
        self.saw_data = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The ``data`` of each event completed by ``chunk``; sets ``saw_data`` for this chunk."""
        self.saw_data = False
        events: list[bytes] = []
        start = 0
        if self._after_cr and chunk[:1] == b"\n":
            start = 1  # the \n of a \r\n split across two chunks
        self._after_cr = False
        length = len(chunk)
        while start < length:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                self._append(chunk[start:])
                break
            end = min(ends)
            self._append(chunk[start:end])
            self._end_line(events)
            if chunk[end : end + 1] == b"\r":
                if end + 1 == length:
                    self._after_cr = True
                    start = length
                    break
                if chunk[end + 1 : end + 2] == b"\n":
                    end += 1
            start = end + 1
        if self._line and not self._line.startswith(b":"):
            self.saw_data = True  # part of a field line is arriving
        return events

    def _append(self, piece: bytes) -> None:
        if piece:
            self._line += piece
            if len(self._line) + self._size > self.max_event_bytes:
                raise EventTooLarge(f"an upstream event is larger than {self.max_event_bytes} bytes")

    def _end_line(self, events: list[bytes]) -> None:
        line = bytes(self._line)
        self._line.clear()
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self.saw_data = True
            self._data, self._size = [], 0
            return
        if line.startswith(b":"):
            return  # a comment: keep-alive
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._size += len(value) + 1
        self.saw_data = True

    def close(self) -> list[bytes]:
        """At the end of the body: the ``data`` of an event no blank line closed (the spec drops it; servers that
        end with ``data: [DONE]`` and no blank line exist, so it is returned)."""
        if self._line:
            self._end_line([])
        pending, self._data, self._size = self._data, [], 0
        return [b"\n".join(pending)] if pending else []
