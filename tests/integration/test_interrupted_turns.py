"""A turn interrupted by a crash continues: it is told what it already sent and says nothing twice.

Runner crashes (the mock's `crash-once`) and host SIGKILLs, through real sandboxes; with the mock
provider (which, like a model, skips what it was told it already sent, or with `repeat` says it
anyway) and with Claude Code against the fake Anthropic API (the SDK session resumed, tool calls
included).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from nanoclaw.protocol.messages import turn_of
from tests.conftest import fake, make_settings, wire
from tests.fakes.anthropic import FakeAnthropic, Reply
from tests.fakes.channel import FakeChannel, RichFakeChannel
from tests.integration.hostproc import HostProcess

pytestmark = pytest.mark.sandbox


def rows_of(home: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(id, kind, text, delivery status) of every outbound row of every session, in order."""
    found = []
    for db in sorted((home / "sessions").glob("*/*/outbound.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.execute("ATTACH DATABASE ? AS i", (f"file:{db.parent / 'inbound.db'}?mode=ro",))
        found += conn.execute("SELECT m.id, m.kind, m.text, d.status FROM messages_out m"
                              " LEFT JOIN i.delivered d ON d.out_seq = m.seq ORDER BY m.seq").fetchall()
        conn.close()
    return found


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(make_settings(tmp_path / "home"), channels=[FakeChannel, RichFakeChannel])
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_a_progress_message_sent_before_a_runner_crash_is_not_sent_again(host: Host, tmp_path: Path) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("[mock:say=progress update][mock:crash-once] the job", message_id="job")
    assert await ch.wait_processed("job", timeout=30) == "done"
    texts = [s.text for s in ch.sent]
    assert texts.count("progress update") == 1, texts
    assert len(texts) == 2 and "the job" in texts[-1]
    ids = [(turn_of(i), kind) for i, kind, _text, _status in rows_of(tmp_path / "home")]
    turn = ids[0][0][0]  # type: ignore[index]
    # the first run's progress, then the second run's answer: ids name the turn, the run and the position
    assert ids == [((turn, 0), "chat"), ((turn, 1), "chat")]


async def test_cards_and_files_sent_before_a_crash_are_not_sent_again(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    await ch.say("[mock:card=Pick one][mock:file=report.txt][mock:crash-once] go", chat="room", message_id="go")
    assert await ch.wait_processed("go", timeout=30) == "done"
    kinds = [(s.kind, s.file.name if s.file else s.text) for s in ch.sent]
    assert kinds.count(("card", "Pick one")) == 1 and kinds.count(("file", "report.txt")) == 1, kinds
    assert len(kinds) == 3


async def test_a_repeat_the_model_makes_anyway_is_suppressed_at_delivery(host: Host, tmp_path: Path) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("[mock:repeat=progress update][mock:crash-once] again", message_id="again")
    assert await ch.wait_processed("again", timeout=30) == "done"
    assert [s.text for s in ch.sent].count("progress update") == 1
    rows = rows_of(tmp_path / "home")
    progress = [(i, status) for i, kind, text, status in rows if text == "progress update"]
    assert [status for _, status in progress] == ["sent", "repeat"]  # written twice, delivered once
    assert turn_of(progress[0][0])[1] == 0 and turn_of(progress[1][0])[1] == 1  # type: ignore[index]


async def test_the_same_text_twice_in_one_run_is_sent_twice(host: Host) -> None:
    """Only a repeat across runs of a turn is suppressed: an agent may well say "still working" twice."""
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("[mock:repeat=still working][mock:repeat=still working] fine", message_id="twice")
    assert await ch.wait_processed("twice", timeout=30) == "done"
    assert [s.text for s in ch.sent].count("still working") == 2


def test_a_progress_message_is_not_repeated_after_the_host_is_killed_mid_turn(tmp_path: Path) -> None:
    home = tmp_path / "home"
    host = HostProcess(home).start()
    with host.client(timeout=20) as c:
        c.request("subscribe")
        assert c.request("send", text="[mock:say=progress update][mock:sleep=3] long job", id="job")["ok"]
        first = next(e for e in c.events() if e.get("event") == "message")
        assert first["text"] == "progress update"
    deadline = time.monotonic() + 10
    while not any(status == "sent" for *_, status in rows_of(home)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the delivery record is written right after the send
    host.kill9()  # mid-turn: the runner is still sleeping

    host = HostProcess(home).start()
    try:
        with host.client(timeout=30) as c:
            c.request("subscribe")
            replies = []
            for event in c.events():
                if event.get("event") == "message":
                    replies.append(event["text"])
                if event.get("event") == "processed" and "job" in event.get("ids", []):
                    break
        assert "progress update" not in replies and len(replies) == 1 and "long job" in replies[0], replies
    finally:
        host.stop()


# -- Claude Code: the SDK session carries on -------------------------------------------------------


@pytest.fixture
def api() -> AsyncIterator[FakeAnthropic]:
    with FakeAnthropic() as fake_api:
        yield fake_api


@pytest.mark.slow
async def test_claude_resumes_its_session_with_the_interrupted_turns_tool_calls(tmp_path: Path, api: FakeAnthropic) -> None:
    from tests.integration.test_claude import claude_settings, tool

    release = threading.Event()

    def hang(_request: object) -> Reply:  # the model is still thinking when the runner dies
        release.wait(60)
        return Reply.text("never delivered")

    api.script(tool("send_message", {"text": "working on it…"}), hang, Reply.text("all done"))
    host = Host(claude_settings(tmp_path / "home", api), channels=[FakeChannel])
    await host.start()
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("do the long thing", message_id="long")
        await ch.wait_sent(1, timeout=60)
        await asyncio.to_thread(api.wait_for_main, 2, 60)
        # Claude Code writes its transcript as it goes: the kill comes once the tool call is in it.
        transcripts = host.folders.claude_path("main") / "projects"
        await until(lambda: any("tool_result" in p.read_text(errors="replace") for p in transcripts.rglob("*.jsonl")))
        [killed] = list(host.supervisor.live.values())
        killed.process.kill()
        while host.supervisor.live.get(killed.session_id) is killed:  # gone before the model "answers"
            await asyncio.sleep(0.02)
        release.set()
        assert await ch.wait_processed("long", timeout=90) == "done"
        assert [s.text for s in ch.sent] == ["working on it…", "all done"]
        resumed = api.main_requests()[-1]
        # the interrupted turn's own prompt and tool call, from the resumed session, then the prompt again
        assert sum("do the long thing" in text for text in resumed.user_texts()) == 2, resumed.user_texts()
        assert any("send_message" in name for name in _tool_uses(resumed))
        assert "already_sent" in resumed.last_user_text() and "working on it…" in resumed.last_user_text()
    finally:
        release.set()
        await host.stop()


async def until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _tool_uses(request: object) -> list[str]:
    names = []
    for message in request.messages:  # type: ignore[attr-defined]
        if message.get("role") == "assistant" and isinstance(message.get("content"), list):
            names += [b.get("name", "") for b in message["content"] if b.get("type") == "tool_use"]
    return names


async def test_ids_channels_see_are_unique_across_sessions(host: Host) -> None:
    """Row ids repeat from session to session (t<turn>.<run>.<position>); channels use the id they get as an
    idempotency key (Matrix transaction ids, crash lookups), so it names the session too."""
    for chat in ("chat1", "chat2"):
        wire(host, chat, trigger="always")
    ch = fake(host)
    await ch.say("[mock:say=working] one", chat="chat1", message_id="one")
    await ch.say("[mock:say=working] two", chat="chat2", message_id="two")
    for message_id in ("one", "two"):
        assert await ch.wait_processed(message_id, timeout=30) == "done"
    ids = [s.id for s in ch.sent]
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    assert {turn_of(i.split(".", 1)[1]) is not None for i in ids} == {True}
