"""previous_response_id: the upstream sees prev.input + prev.output + new input; forks; instructions."""

from __future__ import annotations

import openai

from tests.conftest import UpstreamLog


def test_chain_sends_previous_input_output_and_new_input(client: openai.OpenAI, upstream: UpstreamLog):
    first = client.responses.create(model="m", input="REPLY one", instructions="first rules")
    second = client.responses.create(model="m", input="REPLY two", previous_response_id=first.id)
    third = client.responses.create(model="m", input="three", previous_response_id=second.id)
    # Instructions of earlier turns are not carried over; both turns' inputs and outputs are.
    assert upstream.last_messages() == [
        {"role": "user", "content": "REPLY one"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "REPLY two"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    assert third.previous_response_id == second.id
    assert third.output_text == "roles=user,assistant,user,assistant,user; last=three"


def test_fork_from_the_middle_of_a_chain(client: openai.OpenAI, upstream: UpstreamLog):
    root = client.responses.create(model="m", input="REPLY root")
    middle = client.responses.create(model="m", input="REPLY middle", previous_response_id=root.id)
    client.responses.create(model="m", input="REPLY tip", previous_response_id=middle.id)
    fork = client.responses.create(model="m", input="fork", previous_response_id=root.id, instructions="new")
    assert upstream.last_messages() == [
        {"role": "system", "content": "new"},
        {"role": "user", "content": "REPLY root"},
        {"role": "assistant", "content": "root"},
        {"role": "user", "content": "fork"},
    ]
    assert fork.output_text.endswith("last=fork")


def test_chain_keeps_reasoning_out_of_upstream_messages(client: openai.OpenAI, upstream: UpstreamLog):
    first = client.responses.create(model="m", input="REASON x\nREPLY y")
    client.responses.create(model="m", input="next", previous_response_id=first.id)
    assert [m["role"] for m in upstream.last_messages()] == ["user", "assistant", "user"]


def test_previous_response_id_unknown_is_400(client: openai.OpenAI):
    try:
        client.responses.create(model="m", input="x", previous_response_id="resp_doesnotexist")
    except openai.BadRequestError as exc:
        assert exc.code == "previous_response_not_found"
        assert exc.param == "previous_response_id"
        assert "resp_doesnotexist" in exc.message
    else:
        raise AssertionError("expected a 400")


def test_chain_after_delete_of_previous_is_400(client: openai.OpenAI):
    first = client.responses.create(model="m", input="a")
    client.responses.delete(first.id)
    try:
        client.responses.create(model="m", input="b", previous_response_id=first.id)
    except openai.BadRequestError as exc:
        assert exc.code == "previous_response_not_found"
    else:
        raise AssertionError("expected a 400")
