"""Pairing, the way OpenClaw users know it: a stranger in a direct chat gets a short code (once, valid 1 hour, at
most 3 waiting per channel); the owner approves it with `nanoclaw pairing approve CODE`, the card or the dashboard;
what the stranger wrote is then answered."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.db import approvals, channel_settings, messaging_groups, wirings
from nanoclaw.host.app import Host
from tests.channels.platforms.telegram import TelegramPlatform
from tests.conftest import fake, make_settings
from tests.fakes.channel import FakeChannel, RichFakeChannel, ThreadedFakeChannel
from tests.onboarding.helpers import wait_until, web_card
from tests.onboarding.platform_host import host_with

pytestmark = pytest.mark.sandbox
CODE = re.compile(r"pairing code is ([A-Z2-9]{8})\b")
BOB = 555_000_111


def codes_in(texts: list[str]) -> list[str]:
    return [m.group(1) for t in texts for m in CODE.finditer(t)]


async def cli(home: Path, *args: str) -> tuple[int, str]:
    """`nanoclaw …` in a thread: it talks to the running host over its socket, as from another terminal."""
    result = await asyncio.to_thread(CliRunner().invoke, main, ["--home", str(home), *args])
    return result.exit_code, result.output


async def test_pairing_code_sent_once_then_approved_with_the_cli_on_telegram(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    async with host_with(platform, tmp_path) as host:
        channel_settings.set_new_chats(host.conn, "telegram", "pairing")
        platform.fake.add_chat(BOB, "private", "Bob")
        bob = platform.user("u2", "Bob")
        platform._users["u2"] = BOB
        bob["id"] = BOB
        await platform.fake.user_message(BOB, bob, "hi, can you help me plan a trip?")
        told = await platform.wait_bot_messages(1, str(BOB), timeout=30)
        [code] = codes_in([m.text for m in told])
        assert "expires in 1 hour" in told[0].text and code[0] not in "01OI"
        await platform.fake.user_message(BOB, bob, "hello??")
        await asyncio.sleep(0.5)
        assert len(await platform.bot_messages(str(BOB))) == 1  # one code per request, not one per message
        card = await web_card(host, "Pairing request")
        assert code in card["text"] and card["buttons"] == ["Approve", "Deny"]

        home = tmp_path / "home"
        status, listed = await cli(home, "pairing", "list")
        assert status == 0 and code in listed and "telegram" in listed and "Bob" in listed
        status, out = await cli(home, "pairing", "approve", "telegram", code.lower())
        assert status == 0 and "2 waiting messages went through" in out, out
        answers = await platform.wait_bot_messages(2, str(BOB), timeout=30)
        assert "plan a trip" in "\n".join(m.text for m in answers[1:])
        await wait_until(lambda: "hello??" in "\n".join(m.text for m in platform.fake.sent if m.chat == str(BOB)))
        chat = messaging_groups.find(host.conn, "telegram", str(BOB))
        assert [(w.agent_group_id, w.trigger) for w in wirings.for_messaging_group(host.conn, chat.id)] == [("main", "dm")]
        status, again = await cli(home, "pairing", "approve", code)
        assert status == 1 and "no open pairing request" in again


async def test_pairing_requests_are_capped_and_expire(host: Host) -> None:
    channel_settings.set_new_chats(host.conn, "fake", "pairing")
    ch = fake(host)
    for n in range(4):
        await ch.say(f"hello from stranger {n}", chat=f"dm-{n}", sender=f"s{n}", is_dm=True)
    await wait_until(lambda: len(codes_in([s.text for s in ch.sent])) == 3)
    await asyncio.sleep(0.3)
    assert [s.route.platform_id for s in ch.sent] == ["dm-0", "dm-1", "dm-2"]  # the fourth waits for a free place
    first = approvals.open_of_kind(host.conn, "pairing")[0]
    host.conn.execute("UPDATE approvals SET expires_at = ? WHERE id = ?", (time.time() - 1, first.id))
    await ch.say("still there?", chat="dm-0", sender="s0", is_dm=True)
    await wait_until(lambda: len(codes_in([s.text for s in ch.sent if s.route.platform_id == "dm-0"])) == 2)
    old, new = codes_in([s.text for s in ch.sent if s.route.platform_id == "dm-0"])
    assert old != new
    status, out = await cli(host.settings.home, "pairing", "approve", old)
    assert status == 1 and "expired" in out


async def test_pairing_denied_with_the_card_then_approved_on_the_dashboard(host: Host) -> None:
    channel_settings.set_new_chats(host.conn, "fake", "pairing")
    ch = fake(host)
    await ch.say("let me in", chat="eve-dm", sender="eve", is_dm=True)
    await ch.say("please", chat="finn-dm", sender="finn", is_dm=True)
    eve_card = await web_card(host, "Pairing request")
    await host.answer(eve_card["card_id"], "Deny", "owner")
    assert messaging_groups.find(host.conn, "fake", "eve-dm").admission == "ignored"
    [finn] = approvals.open_of_kind(host.conn, "pairing")
    token = host.web.login_link.split("token=")[1]
    async with aiohttp.ClientSession(base_url=host.web_url, headers={"Authorization": f"Bearer {token}"}) as api:
        async with api.get("/api/dashboard/people") as r:
            listed = (await r.json())["pairing"]
        assert [(p["code"], p["who"]) for p in listed] == [(finn.payload["code"], "Finn")]
        async with api.post(f"/api/dashboard/people/pairing/{finn.payload['code']}", json={"decision": "approve"}) as r:
            assert r.status == 200 and "Answered" in (await r.json())["outcome"]
    await wait_until(lambda: any("please" in s.text for s in ch.sent if s.route.platform_id == "finn-dm"
                                 and "pairing code" not in s.text))
    await ch.say("me again", chat="eve-dm", sender="eve", is_dm=True)
    await asyncio.sleep(0.3)
    assert not any("me again" in s.text for s in ch.sent)


async def test_pairing_approved_while_the_host_is_stopped_is_answered_at_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    channels = [FakeChannel, ThreadedFakeChannel, RichFakeChannel]
    first = Host(settings, channels=channels)
    await first.start()
    try:
        channel_settings.set_new_chats(first.conn, "fake", "pairing")
        await fake(first).say("are you there?", chat="gus-dm", sender="gus", is_dm=True)
        await wait_until(lambda: codes_in([s.text for s in fake(first).sent]))
        [code] = codes_in([s.text for s in fake(first).sent])
    finally:
        await first.stop()
    status, out = await cli(settings.home, "pairing", "approve", code)
    assert status == 0 and "answered when the host starts" in out, out
    second = Host(settings, channels=channels)
    await second.start()
    try:
        await wait_until(lambda: any("are you there?" in s.text for s in fake(second).sent))
    finally:
        await second.stop()
