"""Who gets answered: mentions at word boundaries, prefixes, always, DMs; commands."""

from __future__ import annotations

import pytest

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.db.wirings import Wiring
from nanoclaw.host import commands
from nanoclaw.host.router import clean_text, mention_pattern, triggers

GROUP = MessagingGroup(1, "fake", "g", "Group", False)
DM = MessagingGroup(2, "fake", "d", "DM", True)


def wiring(trigger: str = "mention", value: str | None = None) -> Wiring:
    return Wiring(1, 1, "main", trigger, value, "thread", "per-thread", 0)


def event(text: str, **kw: object) -> InboundEvent:
    return InboundEvent("fake", "g", "m1", text, "u1", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("@Andy hello", True), ("hey @andy, how are you", True), ("HI @ANDY!", True), ("(@Andy)", True),
    ("@Andyx hello", False), ("mail me@Andy.com", False), ("Andy hello", False), ("@An dy", False),
    ("line one\n@andy line two", True),
])
def test_mention_at_a_word_boundary_any_case(text: str, expected: bool) -> None:
    assert triggers(wiring(), event(text), GROUP, "Andy") is expected
    assert bool(mention_pattern("Andy").search(text)) is expected


def test_custom_mention_word_prefix_always_and_dm_only() -> None:
    assert triggers(wiring("mention", "Bot"), event("@bot do it"), GROUP, "Andy")
    assert not triggers(wiring("mention", "Bot"), event("@Andy do it"), GROUP, "Andy")
    assert triggers(wiring("prefix", "!ask"), event("  !ASK what time"), GROUP, "Andy")
    assert not triggers(wiring("prefix", "!ask"), event("please !ask"), GROUP, "Andy")
    assert triggers(wiring("always"), event("anything"), GROUP, "Andy")
    assert not triggers(wiring("dm"), event("@Andy hi"), GROUP, "Andy")
    assert triggers(wiring("dm"), event("hi"), DM, "Andy")


def test_dms_always_trigger_and_platform_mentions_count() -> None:
    assert triggers(wiring("mention"), event("no name here"), DM, "Andy")
    assert triggers(wiring("mention"), event("no name here", is_dm=True), GROUP, "Andy")
    assert triggers(wiring("mention"), event("reply to the bot", mentions_assistant=True), GROUP, "Andy")


def test_clean_text_keeps_lines_and_drops_binary() -> None:
    assert clean_text("a\x00b\x07c\td\ne\r\nf\rg") == "abc\td\ne\nf\ng"
    assert clean_text("broken \ud800 surrogate") == "broken ? surrogate"


@pytest.mark.parametrize("text,name,args", [
    ("/clear", "clear", ""), ("/compact now please", "compact", "now please"), ("/clear@AndyBot", "clear", ""),
    ("  /HELP  ", "help", ""), ("/approve oa-12345678", "approve", "oa-12345678"),
])
def test_commands_are_parsed(text: str, name: str, args: str) -> None:
    command = commands.parse(text)
    assert command is not None and (command.name, command.args) == (name, args)


@pytest.mark.parametrize("text", ["/frobnicate", "clear", "please /clear", "/"])
def test_unknown_commands_are_not_ours(text: str) -> None:
    assert commands.parse(text) is None
