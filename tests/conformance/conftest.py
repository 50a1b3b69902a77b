"""Conformance fixtures on top of the top-level ones (``stack``, ``client``, ``http``, ``upstream``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.mcp_servers import mcp_server
from tests.conformance.validators import ALLOWLIST, allowances_used


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    """A real MCP server (streamable HTTP) with the tools add/echo/fail/slow/big."""
    with mcp_server("streamable-http") as url:
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Make every use of the validators' allowlist visible in the run's output, never silent."""
    used = allowances_used()
    if used:
        terminalreporter.write_sep("-", "conformance validators: allowlisted spec divergences applied")
        for key, count in sorted(used.items()):
            terminalreporter.write_line(f"{key} x{count}: {ALLOWLIST[key]}")
