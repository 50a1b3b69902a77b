"""openai-agents, unchanged: Agent + @function_tool + Runner with OpenAIResponsesModel on the local stack."""

from __future__ import annotations

import asyncio

import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.conftest import UpstreamLog

set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _agent(stack: str) -> Agent:
    client = AsyncOpenAI(base_url=stack, api_key="sk-local", max_retries=0)
    return Agent(
        name="calculator",
        instructions="Use the add tool.",
        tools=[add],
        model=OpenAIResponsesModel(model="scripted", openai_client=client),
    )


@pytest.mark.parametrize("streamed", [False, True])
def test_agent_runs_a_tool_loop_through_the_stack(stack: str, upstream: UpstreamLog, streamed: bool):
    agent = _agent(stack)
    prompt = 'CALL add {"a": 2, "b": 3}'

    async def run() -> str:
        if streamed:
            result = Runner.run_streamed(agent, prompt, run_config=RunConfig(tracing_disabled=True))
            async for _ in result.stream_events():
                pass
            return str(result.final_output)
        done = await Runner.run(agent, prompt, run_config=RunConfig(tracing_disabled=True))
        return str(done.final_output)

    assert asyncio.run(run()) == "tool results: 5"
    chats = [r["body"] for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    assert len(chats) == 2
    assert chats[0]["tools"][0]["function"]["name"] == "add"
    assert [m["role"] for m in chats[1]["messages"]] == ["system", "user", "assistant", "tool"]
