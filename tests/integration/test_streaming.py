"""Streamed replies and stop, end to end: real host, real sandbox, the mock model streaming tokens.

The chat is `StreamingFakeChannel` (edits, a 0.2 s rate limit); the real platforms' share of the same
behaviour is in tests/channels/test_contract.py and the web chat's in tests/web/.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from nanoclaw.host.streaming import CUT_SHORT
from nanoclaw.runner.main import STOPPED
from tests.conftest import make_settings, wire
from tests.fakes.channel import FakeChannel, StreamingFakeChannel

pytestmark = pytest.mark.sandbox
WORDS = " ".join(f"w{i}" for i in range(60))


async def start(tmp_path: Path, **overrides: object) -> Host:
    host = Host(make_settings(tmp_path / "home", **overrides), channels=[FakeChannel, StreamingFakeChannel])
    await host.start()
    wire(host, "chat1", channel="fakestream", trigger="always")
    return host


@pytest.fixture
async def shost(tmp_path: Path) -> AsyncIterator[Host]:
    host = await start(tmp_path)
    try:
        yield host
    finally:
        await host.stop()


def chan(host: Host) -> StreamingFakeChannel:
    ch = host.channels["fakestream"]
    assert isinstance(ch, StreamingFakeChannel)
    return ch


async def test_a_streamed_reply_is_one_message_that_grows_within_the_rate_limit_then_is_final(shost: Host) -> None:
    ch = chan(shost)
    await ch.say(f"[mock:reply={WORDS}][mock:stream=60/1.5]")
    await ch.wait_sent(1, timeout=30)
    first_seen = asyncio.get_running_loop().time()
    [sent] = ch.sent
    assert sent.text and WORDS.startswith(sent.text) and sent.text != WORDS  # shown before it was finished
    await ch.wait_for(lambda: ch.text_of(sent.platform_id) == WORDS)
    assert asyncio.get_running_loop().time() - first_seen > 0.8  # it grew over the model's time, not at the end
    edits = [(t, text) for t, kind, pid, text in ch.events if kind == "edit" and pid == sent.platform_id]
    assert len(edits) >= 3
    texts = [sent.text] + [text for _t, text in edits]
    assert all(b.startswith(a) or b == WORDS for a, b in zip(texts, texts[1:]))  # it only grows
    times = [ch.events[0][0]] + [t for t, _text in edits]
    assert min(b - a for a, b in zip(times, times[1:-1])) >= 0.2 * 0.9  # no faster than the platform allows
    await asyncio.sleep(0.3)
    assert len(ch.sent) == 1  # the final answer took the growing message's place: delivered once


async def test_streaming_turned_off_for_a_channel_sends_the_reply_whole(tmp_path: Path) -> None:
    host = await start(tmp_path, streaming_off="fakestream")
    try:
        ch = chan(host)
        await ch.say(f"[mock:reply={WORDS}][mock:stream=30/0.6]")
        [sent] = await ch.wait_sent(1, timeout=30)
        assert sent.text == WORDS and ch.edits == []
    finally:
        await host.stop()


async def test_stop_interrupts_the_turn_and_the_agent_says_it_stopped(shost: Host) -> None:
    ch = chan(shost)
    await ch.say("[mock:stream=400/40]")
    [sent] = await ch.wait_sent(1, timeout=30)
    await ch.wait_for(lambda: "word5 " in ch.text_of(sent.platform_id))
    result = await ch.say("/stop")
    assert result.accepted and result.reply is None  # the agent answers, not the host
    started = asyncio.get_running_loop().time()
    await ch.wait_for(lambda: ch.text_of(sent.platform_id).endswith(STOPPED), timeout=15)
    assert asyncio.get_running_loop().time() - started < 5
    text = ch.text_of(sent.platform_id)
    assert text.startswith("word1 word2 word3 word4 word5") and "word400" not in text  # what it had written, then that it stopped
    assert len(ch.sent) == 1
    # The runner lives on and answers the next message; a later /stop has nothing to stop.
    await ch.say("[mock:reply=still here]")
    await ch.wait_sent(2, timeout=30)
    assert ch.sent[-1].text == "still here"
    reply = await ch.say("/stop")
    assert reply.reply == "Nothing is running here."


async def test_a_reply_cut_short_by_a_dying_runner_is_marked_and_the_retry_answers_once(shost: Host) -> None:
    ch = chan(shost)
    await ch.say(f"[mock:reply={WORDS}][mock:stream=60/6]")
    [first] = await ch.wait_sent(1, timeout=30)
    [session_id] = list(shost.supervisor.live)
    shost.supervisor.kill(session_id)
    await ch.wait_for(lambda: ch.text_of(first.platform_id).endswith(CUT_SHORT), timeout=15)
    await ch.wait_for(lambda: len(ch.sent) >= 2 and ch.text_of(ch.sent[1].platform_id) == WORDS, timeout=60)
    finals = [pid for pid in {s.platform_id for s in ch.sent} if ch.text_of(pid) == WORDS]
    assert len(finals) == 1


async def test_the_openai_provider_shows_stream_deltas_and_stop_cancels_its_stream(tmp_path: Path) -> None:
    from dataclasses import replace

    from nanoclaw.db import agent_groups
    from tests.fakes.openai import FakeOpenAI, Step

    with FakeOpenAI() as oai:
        settings = replace(make_settings(tmp_path / "home", egress_allow_private=True),
                           extra={"OPENAI_API_KEY": "sk-test"})
        host = Host(settings, channels=[StreamingFakeChannel])
        agent_groups.set_model(host.conn, "main", "openai", "llama-test", oai.base_url)
        await host.start()
        try:
            wire(host, "chat1", channel="fakestream", trigger="always")
            ch = chan(host)
            oai.script(Step.stream(WORDS, 60, 1.2), Step.stream(WORDS, 60, 30), Step.say("after the stop"))
            await ch.say("stream please")
            [first] = await ch.wait_sent(1, timeout=30)
            assert WORDS.startswith(first.text) and first.text != WORDS
            await ch.wait_for(lambda: ch.text_of(first.platform_id) == WORDS)
            await ch.say("a long one")
            await ch.wait_for(lambda: len(ch.sent) == 2 and "w3 " in ch.text_of(ch.sent[1].platform_id))
            await ch.say("/stop")
            await ch.wait_for(lambda: ch.text_of(ch.sent[1].platform_id).endswith(STOPPED), timeout=15)
            for _ in range(100):  # the runner closed its connection: the model stops writing
                if oai.disconnects:
                    break
                await asyncio.sleep(0.05)
            assert oai.disconnects == 1
            await ch.say("and now?")
            await ch.wait_for(lambda: len(ch.sent) == 3 and ch.text_of(ch.sent[2].platform_id) == "after the stop")
            history = [m for m in oai.requests[-1].messages if m["role"] == "assistant"]
            assert history[-1]["content"].endswith("[stopped]")  # the model knows it was cut off
        finally:
            await host.stop()
