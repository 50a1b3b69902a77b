"""A fixed-seed share of ``make fuzz`` inside the suite: no bad input is answered with a 5xx, a dropped
connection or a 4xx without OpenAI's envelope (``make fuzz`` sends 10,000+ cases; this about 850)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.fuzz import fuzz
from local.scripted_upstream import UpstreamConfig, serve
from local.stack import running_stack


@pytest.fixture(scope="module")
def own_stack() -> Iterator[str]:
    # A stack of its own: the fuzzer fills the default tenant with whatever it generates.
    with serve(UpstreamConfig()) as upstream:
        env = {"UPSTREAM_TIMEOUT_SECONDS": "2", "BACKGROUND_STEP_SECONDS": "0.05"}
        with running_stack(upstream_base_url=upstream, env=env) as base_url:
            yield base_url


@pytest.mark.timeout(300)
def test_no_bad_input_reaches_a_5xx(own_stack: str):
    report = fuzz(own_stack, cases=480, seed=1, content_types=["application/json", "text/plain"])
    assert report.requests >= 800
    assert report.statuses[400] > 300  # it did send bad input
    assert report.server_errors == [], report.server_errors[:5]
    assert report.dropped == [], report.dropped[:5]
    assert report.not_enveloped == [], report.not_enveloped[:5]
