"""Print the fault suite's figures at the end of the run, as the conformance suite prints its allowances."""

from __future__ import annotations

import pytest

from tests.faults.test_fault_suite import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "fault suite (local/faults.py --quick)")
        for line in FIGURES:
            terminalreporter.write_line(line)
