"""The runner's side of streaming: what of an answer being written is shown, and how often it is written."""

from __future__ import annotations

import asyncio

from nanoclaw.runner.streaming import AnswerStream, visible


def test_internal_notes_are_hidden_even_half_typed() -> None:
    assert visible("Hello <internal>plan: be brief</internal>world") == "Hello world"
    assert visible("Hello <internal>still thinking") == "Hello"  # an unclosed note runs to the end
    assert visible("Hello <inter") == "Hello"  # it may become <internal>: not shown yet
    assert visible("a < b and <b>") == "a < b and <b>"


async def test_first_text_is_written_at_once_then_at_most_every_interval_and_the_last_always() -> None:
    writes: list[tuple[str, int | None, str]] = []
    rings: list[int] = []
    stream = AnswerStream(lambda *row: writes.append(row), lambda: rings.append(1), interval=0.1)
    stream.begin(7)
    stream.update("He")
    assert [w[2] for w in writes] == ["He"]  # no waiting for the first text
    for text in ("Hel", "Hell", "Hello"):
        stream.update(text)
    assert len(writes) == 1  # coalesced
    await asyncio.sleep(0.2)
    assert [w[2] for w in writes] == ["He", "Hello"] and len(rings) == 2  # the latest, once
    assert {w[0] for w in writes} == {stream.stream_id} and writes[0][1] == 7
    shown = stream.take()
    assert shown == writes[0][0] and stream.stream_id != shown  # the final row names it; a new answer begins
    assert stream.take() is None  # nothing shown of the new one


async def test_take_cancels_a_pending_write() -> None:
    writes: list[str] = []
    stream = AnswerStream(lambda _id, _seq, text: writes.append(text), lambda: None, interval=0.1)
    stream.begin(1)
    stream.update("one")
    stream.update("one two")
    stream.take()
    await asyncio.sleep(0.2)
    assert writes == ["one"]  # the final row carries the whole text: no partial after it
