"""Raw SSE capture with httpx (no SDK in between) and the framing / state-machine checks every stream must pass."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from local.sse import SseFrame, frames

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
LIFECYCLE = ("response.created", "response.queued", "response.in_progress", *TERMINAL)


@dataclass
class Frame:
    """One SSE event block (the lines up to a blank line), as received."""

    lines: list[str]
    arrived: float
    """``time.monotonic()`` when the block's terminating blank line was read."""

    def fields(self, name: str) -> list[str]:
        return SseFrame(tuple(self.lines)).fields(name)


@dataclass
class Event:
    name: str
    data: dict[str, Any]
    arrived: float

    @property
    def type(self) -> str:
        return str(self.data["type"])


@dataclass
class Capture:
    status_code: int
    content_type: str
    frames: list[Frame] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    done: bool = False
    """Whether a ``data: [DONE]`` frame was received."""
    after_done: list[Frame] = field(default_factory=list)
    body: bytes = b""
    """The body when the answer is not a stream."""

    @property
    def data(self) -> list[dict[str, Any]]:
        return [event.data for event in self.events]

    @property
    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def first(self, kind: str) -> Event:
        return next(event for event in self.events if event.type == kind)

    def terminal(self) -> dict[str, Any]:
        ends = [event.data for event in self.events if event.type in TERMINAL]
        assert len(ends) == 1, f"exactly one terminal event expected, got {[e['type'] for e in ends]}"
        return dict(ends[0]["response"])


def collect(http: httpx.Client, method: str, url: str, **kwargs: Any) -> Capture:
    """Read one SSE answer line by line, keeping every frame as received and when it arrived."""
    with http.stream(method, url, **kwargs) as response:
        capture = Capture(response.status_code, response.headers.get("content-type", ""))
        if response.status_code != 200 or not capture.content_type.startswith("text/event-stream"):
            capture.body = response.read()
            return capture
        for parsed in frames(response.iter_lines()):  # each as soon as its blank line is read
            frame = Frame(list(parsed.lines), time.monotonic())
            (capture.after_done if capture.done else capture.frames).append(frame)
            if frame.fields("data") == ["[DONE]"]:
                capture.done = True
                capture.frames.pop()
    for frame in capture.frames:
        data_lines = frame.fields("data")
        names = frame.fields("event")
        payload = json.loads(data_lines[-1]) if data_lines else {}
        capture.events.append(Event(names[-1] if names else "", payload, frame.arrived))
    return capture


def post_stream(http: httpx.Client, body: dict[str, Any]) -> Capture:
    return collect(http, "POST", "/responses", json={**body, "stream": True})


def check_framing(capture: Capture, *, replay: bool = False) -> None:
    """Framing, numbering, identity and item state-machine checks for one complete stream.

    ``replay``: a ``GET ?stream=true`` replay (may start after ``response.created`` when ``starting_after`` is set).
    """
    assert capture.status_code == 200, capture.body
    assert capture.content_type.startswith("text/event-stream"), capture.content_type
    # one `event:` and exactly one single-line `data:` per frame, nothing else but comments
    for frame in capture.frames:
        data_lines = frame.fields("data")
        assert len(data_lines) == 1, f"one data: line per event, got {frame.lines}"
        assert len(frame.fields("event")) == 1, f"one event: line per event, got {frame.lines}"
        # Open Responses: servers SHOULD NOT use `id:`; nothing else is expected besides comments
        extra = [line for line in frame.lines if not line.startswith(("event:", "data:", ":"))]
        assert extra == [], f"unexpected SSE lines {extra}"
    for event in capture.events:
        assert event.name == event.type, f"event: {event.name!r} != data.type {event.type!r}"
    # exactly one terminal event, last, then data: [DONE] and nothing after it
    assert capture.done, "the stream must end with data: [DONE]"
    assert capture.after_done == [], f"frames after [DONE]: {capture.after_done}"
    types = capture.types
    assert [t for t in types if t in TERMINAL] == [types[-1]], f"one terminal event, last: {types}"
    # sequence_number from 0 (or from where the replay starts), no gaps, on every event, top-level int
    raw = [event.data.get("sequence_number") for event in capture.events]
    numbers = [n for n in raw if type(n) is int]
    assert numbers == raw, f"sequence_number missing or not an integer: {raw}"
    start = numbers[0] if replay else 0
    assert numbers == list(range(start, start + len(numbers))), f"sequence numbers {numbers}"
    if start == 0:
        assert types[0] == "response.created", f"first event {types[0]}"
    # lifecycle snapshots: same id and created_at throughout
    snapshots = [event.data["response"] for event in capture.events if event.type in LIFECYCLE]
    assert len({s["id"] for s in snapshots}) == 1, [s["id"] for s in snapshots]
    assert len({s["created_at"] for s in snapshots}) == 1, [s["created_at"] for s in snapshots]
    # an error event is followed at once by response.failed
    for index, kind in enumerate(types):
        if kind == "error":
            assert types[index + 1 : index + 2] == ["response.failed"], types[index:]
    check_items(capture, partial=replay and start > 0)


def check_items(capture: Capture, *, partial: bool = False) -> None:
    """output_index / content_index / item_id tracking against the items as added and the final output."""
    added: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    parts: dict[tuple[int, int], str] = {}  # (output_index, content_index) -> "open" | "done"
    for event in capture.events:
        data, kind = event.data, event.type
        if kind in LIFECYCLE or kind == "error":
            continue
        index = data.get("output_index")
        assert isinstance(index, int), f"{kind} without output_index: {data}"
        if kind == "response.output_item.added":
            assert index not in added, f"output_index {index} added twice"
            assert partial or index == len(added), f"output_index {index} added as item #{len(added)}"
            item = data["item"]
            assert isinstance(item.get("id"), str) and item["id"], f"added item without id: {item}"
            assert item.get("status", "in_progress") == "in_progress", item
            if item["type"] == "message":
                assert item.get("content") == [], f"message added with content {item.get('content')}"
            if item["type"] in ("function_call", "mcp_call"):
                assert item.get("arguments") == "", f"{item['type']} added with arguments {item.get('arguments')!r}"
            added[index] = item
            continue
        if partial and index not in added:
            continue
        assert index in added, f"{kind} for output_index {index} before its output_item.added"
        assert index not in done, f"{kind} for output_index {index} after its output_item.done"
        item = added[index]
        if kind == "response.output_item.done":
            final = data["item"]
            for key in ("type", "id", "call_id"):
                assert final.get(key) == item.get(key), f"output_item.done changed {key}: {item} -> {final}"
            open_parts = [part for part, state in parts.items() if part[0] == index and state == "open"]
            assert open_parts == [], f"item {index} done with parts still open: {open_parts}"
            done[index] = final
            continue
        assert data.get("item_id") == item["id"], f"{kind} item_id {data.get('item_id')!r} != {item['id']!r}"
        if "content_index" in data:
            part = (index, int(data["content_index"]))
            if kind == "response.content_part.added":
                assert part not in parts, f"content part {part} added twice"
                expected = len([k for k in parts if k[0] == index])
                assert data["content_index"] == expected, f"content_index {data['content_index']} != {expected}"
                parts[part] = "open"
            elif not (partial and part not in parts):
                assert parts.get(part) == "open", f"{kind} for content part {part} that is not open"
                if kind == "response.content_part.done":
                    parts[part] = "done"
    assert sorted(done) == sorted(added), f"items added but never done: {sorted(set(added) - set(done))}"
    incomplete = [index for index, item in done.items() if item.get("status") == "incomplete"]
    assert incomplete in ([], [max(done, default=-1)]), f"an incomplete item must be the last one: {incomplete}"
    terminal = capture.events[-1]
    if terminal.type in TERMINAL:
        output = terminal.data["response"]["output"]
        for index, item in done.items():
            assert index < len(output), f"item {index} missing from the final output"
            assert output[index] == item, f"final output[{index}] differs from its output_item.done"
        if not partial:
            assert len(output) == len(done), f"final output has {len(output)} items, the stream {len(done)}"
