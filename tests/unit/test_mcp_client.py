"""engine.tools.mcp against real MCP servers on 127.0.0.1 (tests/mcp_servers.py), plus its request-time checks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import engine.tools.mcp.transport as mcp_transport
from engine.errors import InvalidRequestError
from engine.tools.mcp import (
    McpCallResult,
    McpConnection,
    McpError,
    McpServerSpec,
    McpTool,
    check_destination,
    open_connection,
    validate_headers,
)
from local.mcp_servers import (
    ROOT,
    everything_server,
    free_port,
    hanging_server,
    mcp_server,
    paging_server,
    unauthorized_server,
)

TOOLS = {"add", "echo", "fail", "slow", "big"}


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    with mcp_server("streamable-http") as url:
        yield url


@pytest.fixture(scope="module")
def sse_url() -> Iterator[str]:
    with mcp_server("sse") as url:
        yield url


@pytest.fixture(autouse=True)
def _forget_transports() -> None:
    mcp_transport._preferred.clear()


def connect(url: str, transport: Any = "auto", label: str = "calc", **options: Any) -> McpConnection:
    return open_connection(McpServerSpec(label, url, transport), allow_private=True, **options)


async def list_and_add(connection: McpConnection) -> tuple[set[str], McpCallResult]:
    async with connection:
        tools = await connection.list_tools()
        return {t.name for t in tools}, await connection.call_tool("add", {"a": 2, "b": 3})


# -- transports --------------------------------------------------------------------------------------------------


def test_streamable_http_lists_and_calls(http_url: str):
    connection = connect(http_url)
    names, result = asyncio.run(list_and_add(connection))
    assert names == TOOLS and result == McpCallResult("5", None)
    assert connection.transport == "streamable_http"


@pytest.mark.parametrize("transport", ["sse", "auto"])
def test_legacy_sse_explicit_and_by_path(sse_url: str, transport: str):
    connection = connect(sse_url, transport)
    names, result = asyncio.run(list_and_add(connection))
    assert names == TOOLS and result.output == "5" and connection.transport == "sse"


def test_auto_falls_back_to_sse_when_streamable_http_is_refused_with_405():
    with mcp_server("sse", path="/stream") as url:  # POST /stream → 405, so "auto" falls back to SSE
        first = connect(url)
        names, result = asyncio.run(list_and_add(first))
        assert names == TOOLS and result.output == "5" and first.transport == "sse"
        assert mcp_transport._preferred[url][0] == "sse"
        again = connect(url)  # the winner is remembered: straight to SSE
        assert asyncio.run(list_and_add(again))[1].output == "5" and again.transport == "sse"


def test_explicit_sse_does_not_fall_back_to_streamable_http(http_url: str):
    async def run() -> None:
        async with connect(http_url, "sse") as connection:
            with pytest.raises(McpError, match=r"MCP server 'calc' answered HTTP 4\d\d"):
                await connection.list_tools()

    asyncio.run(run())


# -- results and errors of calls ---------------------------------------------------------------------------------


def test_tool_error_is_an_execution_error(http_url: str):
    async def run() -> McpCallResult:
        async with connect(http_url) as connection:
            return await connection.call_tool("fail", {"msg": "the disk is full"})

    result = asyncio.run(run())
    assert result.output is None and result.error is not None
    assert result.error["type"] == "mcp_tool_execution_error"
    [content] = result.error["content"]
    assert content["type"] == "input_text" and "the disk is full" in content["text"]


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_call_timeout_is_a_protocol_error_and_the_session_survives(http_url: str, sse_url: str, transport: str):
    url = http_url if transport == "streamable-http" else sse_url

    async def run() -> tuple[McpCallResult, McpCallResult, float]:
        async with connect(url, call_timeout=0.5) as connection:
            started = time.monotonic()
            slow = await connection.call_tool("slow", {"seconds": 5})
            elapsed = time.monotonic() - started
            return slow, await connection.call_tool("echo", {"text": "still here"}), elapsed

    slow, after, elapsed = asyncio.run(run())
    assert slow.output is None and slow.error is not None
    assert slow.error["type"] == "mcp_protocol_error" and slow.error["code"] == -32001
    assert "timed out" in slow.error["message"]
    assert elapsed < 4  # did not wait for the tool
    assert after == McpCallResult("still here", None)


def test_long_output_is_truncated_with_a_marker(http_url: str):
    async def run() -> McpCallResult:
        async with connect(http_url, max_output_bytes=1000) as connection:
            return await connection.call_tool("big", {"n": 5000})

    result = asyncio.run(run())
    assert result.error is None and result.output is not None
    assert result.output.endswith("\n…[truncated: 1000 of 5000 bytes shown]")
    assert result.output.startswith("0123456789abcdef") and len(result.output.split("\n")[0]) == 1000


def test_response_size_cap_fails_one_call_not_the_session(http_url: str):
    async def run() -> tuple[McpCallResult, McpCallResult]:
        async with connect(http_url, max_response_bytes=20_000) as connection:
            return await connection.call_tool("big", {"n": 50_000}), await connection.call_tool("add", {"a": 1, "b": 1})

    too_big, after = asyncio.run(run())
    assert too_big.output is None and too_big.error is not None
    assert too_big.error["type"] == "mcp_protocol_error" and "larger than 20000 bytes" in too_big.error["message"]
    assert after == McpCallResult("2", None)


def test_cancelled_call_propagates_and_the_session_survives(http_url: str):
    async def run() -> McpCallResult:
        async with connect(http_url) as connection:
            task = asyncio.create_task(connection.call_tool("slow", {"seconds": 30}))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await connection.call_tool("add", {"a": 1, "b": 2})

    assert asyncio.run(asyncio.wait_for(run(), 10)) == McpCallResult("3", None)


def test_enter_and_exit_in_different_tasks_and_close_while_a_call_runs(http_url: str):
    async def run() -> tuple[McpCallResult, float]:
        connection = connect(http_url)
        await asyncio.create_task(connection.__aenter__())  # like an async generator resumed by another task
        assert (await connection.call_tool("add", {"a": 1, "b": 1})).output == "2"
        pending = asyncio.create_task(connection.call_tool("slow", {"seconds": 30}))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.create_task(connection.__aexit__(None, None, None))
        return await pending, time.monotonic() - started

    result, closing = asyncio.run(asyncio.wait_for(run(), 10))
    assert closing < 5
    assert result.output is None and result.error is not None and result.error["type"] == "http_error"


def test_paging_server_lists_every_page():
    async def run() -> tuple[list[McpTool], McpCallResult]:
        with paging_server() as url:
            async with connect(url) as connection:
                return await connection.list_tools(), await connection.call_tool("tool_7", {"x": 3})

    tools, result = asyncio.run(run())
    assert [t.name for t in tools] == [f"tool_{i}" for i in range(25)]
    assert tools[0].to_item() == {
        "name": "tool_0",
        "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
        "description": "Tool number 0.",
    }
    assert result.output == '{"tool": "tool_7", "arguments": {"x": 3}}'


def test_server_going_away_mid_session_fails_calls_without_hanging():
    async def run() -> McpCallResult:
        with mcp_server("streamable-http") as url:
            connection = connect(url, label="gone")
            await connection.__aenter__()
            assert (await connection.call_tool("add", {"a": 1, "b": 1})).output == "2"
        try:  # the server process has been stopped
            return await connection.call_tool("add", {"a": 1, "b": 1})
        finally:
            await connection.__aexit__(None, None, None)

    result = asyncio.run(asyncio.wait_for(run(), 20))
    assert result.output is None and result.error is not None and result.error["type"] == "http_error"
    assert "'gone'" in result.error["message"]


# -- servers that cannot be used ---------------------------------------------------------------------------------


def test_hanging_server_times_out():
    async def run() -> tuple[str, McpCallResult, float]:
        with hanging_server() as url:
            started = time.monotonic()
            async with connect(url, label="stuck", connect_timeout=0.5, list_timeout=0.5, call_timeout=0.5) as c:
                with pytest.raises(McpError) as raised:
                    await c.list_tools()
                result = await c.call_tool("add", {"a": 1, "b": 2})
            return raised.value.message, result, time.monotonic() - started

    message, result, elapsed = asyncio.run(asyncio.wait_for(run(), 20))
    assert message == "MCP server 'stuck' timed out after 0.5 s"
    assert result.error == {"type": "http_error", "code": 0, "message": message}
    assert elapsed < 10


def test_refused_port():
    async def run() -> str:
        async with connect(f"http://127.0.0.1:{free_port()}/mcp", label="nobody") as connection:
            with pytest.raises(McpError) as raised:
                await connection.list_tools()
            return raised.value.message

    assert asyncio.run(run()) == "Could not connect to MCP server 'nobody': connection refused"


@pytest.mark.parametrize("transport", ["auto", "sse"])
def test_http_401_is_reported_not_retried(transport: str):
    async def run(url: str) -> tuple[str, McpCallResult]:
        async with connect(url, transport, label="locked") as connection:
            with pytest.raises(McpError) as raised:
                await connection.list_tools()
            return raised.value.message, await connection.call_tool("add", {"a": 1, "b": 2})

    with unauthorized_server() as url:
        message, result = asyncio.run(run(url))
    assert message == "MCP server 'locked' answered HTTP 401 (check headers/authorization)"
    assert result.error == {"type": "http_error", "code": 401, "message": message}


def test_runtime_guard_refuses_loopback_when_private_networks_are_not_allowed(http_url: str):
    async def run() -> str:
        spec = McpServerSpec("guarded", http_url)
        async with open_connection(spec, allow_private=False) as connection:
            with pytest.raises(McpError) as raised:
                await connection.list_tools()
            return raised.value.message

    assert asyncio.run(run()) == "MCP server 'guarded' resolves to a non-public address"


# -- a third-party server (TypeScript SDK) ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["streamableHttp", "sse"])
def test_server_everything(transport: Any):
    async def run(url: str) -> tuple[set[str], McpCallResult]:
        async with connect(url, label="everything") as connection:
            names = {t.name for t in await connection.list_tools()}
            return names, await connection.call_tool("echo", {"message": "hello everything"})

    with everything_server(transport) as url:
        names, result = asyncio.run(run(url))
    assert "echo" in names and result == McpCallResult("Echo: hello everything", None)


# -- request-time checks -----------------------------------------------------------------------------------------


def destination(url: str, allow_private: bool = False) -> None:
    asyncio.run(check_destination(url, allow_private=allow_private, param="tools[0].server_url"))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/mcp", "http://localhost/mcp", "http://[::1]/sse"])
def test_loopback_is_refused_unless_private_networks_are_allowed(url: str):
    with pytest.raises(InvalidRequestError) as raised:
        destination(url)
    assert raised.value.param == "tools[0].server_url" and "non-public address" in raised.value.message
    destination(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/mcp",
        "http://192.168.1.10/mcp",
        "http://100.64.0.1/mcp",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://2130706433/mcp",
        "http://0.0.0.0/mcp",
        "http://[fe80::1]/mcp",
        "http://224.0.0.1/mcp",
    ],
)
def test_non_public_addresses_are_refused(url: str):
    with pytest.raises(InvalidRequestError, match="non-public address"):
        destination(url)


def test_cloud_metadata_is_refused_even_with_private_networks_allowed():
    with pytest.raises(InvalidRequestError, match="non-public address"):
        destination("http://169.254.169.254/", allow_private=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x/mcp", "must use http or https"),
        ("file:///etc/passwd", "must use http or https"),
        ("http://user:pw@127.0.0.1/mcp", "must not contain credentials"),
        ("http:///mcp", "must include a host"),
        ("http://127.0.0.1:99999/mcp", "Invalid MCP server URL"),
        ("http://no-such-host.invalid/mcp", "is not reachable from this server"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str):
    with pytest.raises(InvalidRequestError, match=message) as raised:
        destination(url, allow_private=True)
    assert raised.value.status_code == 400 and raised.value.param == "tools[0].server_url"


def test_public_address_is_accepted_without_contacting_it():
    destination("https://8.8.8.8/mcp")


def test_validate_headers_maps_authorization_to_a_bearer_token():
    assert validate_headers(None, None) == {}
    assert validate_headers({"X-Api-Key": "k1"}, "tok") == {"X-Api-Key": "k1", "Authorization": "Bearer tok"}
    assert validate_headers(None, "Bearer tok") == {"Authorization": "Bearer tok"}
    assert validate_headers(None, "bearer tok") == {"Authorization": "bearer tok"}
    assert validate_headers({"Authorization": "Basic abc"}, None) == {"Authorization": "Basic abc"}


@pytest.mark.parametrize(
    ("headers", "authorization", "param"),
    [
        ({"X Bad": "v"}, None, "tools[2].headers"),
        ({"X-Ok": "line\r\nInjected: 1"}, None, "tools[2].headers"),
        ({"X-Ok": "caf\u00e9"}, None, "tools[2].headers"),
        ({"Host": "evil"}, None, "tools[2].headers"),
        ({"content-type": "text/plain"}, None, "tools[2].headers"),
        ({"Mcp-Session-Id": "s"}, None, "tools[2].headers"),
        ({"Transfer-Encoding": "chunked"}, None, "tools[2].headers"),
        ({"Cookie": "a=b"}, None, "tools[2].headers"),
        ({"X-A": "1", "x-a": "2"}, None, "tools[2].headers"),
        ({"X-Big": "v" * 9000}, None, "tools[2].headers"),
        ({"Authorization": "Bearer a"}, "b", "tools[2].authorization"),
        (None, "tok\nX-Injected: 1", "tools[2].authorization"),
    ],
)
def test_validate_headers_rejects(headers: dict[str, str] | None, authorization: str | None, param: str):
    with pytest.raises(InvalidRequestError) as raised:
        validate_headers(headers, authorization, param="tools[2].headers")
    assert raised.value.param == param
    assert "Injected" not in raised.value.message and "evil" not in raised.value.message  # values are not echoed


# -- import cost -------------------------------------------------------------------------------------------------


def test_importing_the_client_does_not_load_the_sdk():
    code = (
        "import sys, time\n"
        "import engine.errors\n"
        "started = time.perf_counter()\n"
        "import engine.tools.mcp\n"
        "print(round((time.perf_counter() - started) * 1000, 1))\n"
        "loaded = {'mcp', 'mcp_types', 'httpx2', 'httpcore2'} & {name.split('.')[0] for name in sys.modules}\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'engine'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
