"""The fault suite at ``make test`` size (``local/faults.py --quick``; ``make faults`` runs every case): a chaos
upstream, MCP faults, moto paused past boto's retries, a client that disconnects, a scan for plaintext
credentials. Every fault must end in a terminal state that says why, and be stored as the client was told."""

from __future__ import annotations

from local.faults import run_suite, table

FIGURES: list[str] = []


def test_every_fault_ends_terminal_stored_as_told_and_no_secret_at_rest():
    outcomes = run_suite(quick=True)
    report = table(outcomes)
    FIGURES.extend(report.splitlines())
    assert len(outcomes) >= 30
    assert [o for o in outcomes if o.problems] == [], report
