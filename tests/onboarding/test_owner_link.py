"""One owner, many accounts: `nanoclaw owner link`'s code sent from a chat app makes that account an owner; cards
then go there and the owner answers them there (button or /approve). Telegram and Slack with their real client
libraries against the fake servers, a real host and real sandboxes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.db import approvals, messaging_groups, owner_links, users, wirings
from tests.channels.platforms.slack import SlackPlatform
from tests.channels.platforms.telegram import TelegramPlatform
from tests.onboarding.helpers import wait_until
from tests.onboarding.platform_host import host_with

pytestmark = pytest.mark.sandbox


async def test_owner_link_from_telegram_then_approve_there(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    async with host_with(platform, tmp_path) as host:
        assert host.gate.admin_route().channel_type == "web"  # fresh install: cards go to the web chat
        await platform.user_says("hi, it's me", dm=True)  # before linking: a new chat like any other
        code = owner_links.create(host.conn)
        await platform.user_says(f"{code[:4]}-{code[4:].lower()}", dm=True)  # typed by hand, dash and all
        replies = await platform.wait_bot_messages(2, platform.dm_chat, timeout=30)
        assert any("Linked: Alice on telegram is now an owner" in m.text for m in replies)
        assert any("hi, it's me" in m.text for m in replies)  # what the owner said before linking is answered
        assert users.find(host.conn, "telegram", platform.dm_chat).role == "owner"
        assert host.gate.admin_route().platform_id == platform.dm_chat
        assert owner_links.redeem(host.conn, code, "telegram:999") is False  # one time only

        await platform.user_says("hello bot", sender="u2", sender_name="Bob", mention=True)  # a stranger, a group
        card = await _card(platform, "New chat")
        assert card.buttons == ("Answer with main", "Ignore", "Block") and "hello bot" in card.text
        oa = approvals.open_of_kind(host.conn, "new_chat")[0].id
        await platform.user_says(f"/approve {oa}", dm=True)  # answered from the chat app
        answered = await platform.wait_bot_messages(1, platform.group_chat, timeout=30)
        assert any("hello bot" in m.text for m in answered)
        chat = messaging_groups.find(host.conn, "telegram", platform.group_chat)
        assert [w.agent_group_id for w in wirings.for_messaging_group(host.conn, chat.id)] == ["main"]


async def test_owner_link_then_button_on_slack(tmp_path: Path) -> None:
    platform = SlackPlatform()
    async with host_with(platform, tmp_path) as host:
        code = owner_links.create(host.conn)
        await platform.user_says(code, dm=True)
        await wait_until(lambda: any("Linked" in m.text for m in platform.server.bot_messages(platform.dm_chat)))
        owner = users.find(host.conn, "slack", "U000000U1")
        assert owner is not None and owner.role == "owner"
        await platform.user_says("can you help?", sender="u2", sender_name="Bob", mention=True)
        card = await _card(platform, "New chat")
        assert card.buttons == ("Answer with main", "Ignore", "Block")
        await platform.press(card, "Answer with main", sender="u2")  # not an owner: refused
        await platform.press(card, "Answer with main")
        answered = await platform.wait_bot_messages(1, platform.group_chat, timeout=30)
        assert any("can you help?" in m.text for m in answered)
        assert approvals.get(host.conn, approvals_decided(host)).status == "approved"


async def test_owner_link_cli_list_and_unlink(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    async with host_with(platform, tmp_path) as host:
        home = str(tmp_path / "home")
        linked = CliRunner().invoke(main, ["--home", home, "owner", "link", "--ttl", "120"])
        assert linked.exit_code == 0, linked.output
        code = linked.output.split(": ")[1].split()[0]
        assert len(code) == 9 and code[4] == "-"
        await platform.user_says(code, dm=True)
        await wait_until(lambda: users.find(host.conn, "telegram", platform.dm_chat) is not None
                         and users.find(host.conn, "telegram", platform.dm_chat).role == "owner")
        listed = CliRunner().invoke(main, ["--home", home, "owner", "list"])
        assert f"owner    telegram:{platform.dm_chat}" in listed.output and "owner    web:owner" in listed.output
        groups = CliRunner().invoke(main, ["--home", home, "groups"])
        assert f"owner    telegram:{platform.dm_chat}" in groups.output
        gone = CliRunner().invoke(main, ["--home", home, "owner", "unlink", f"telegram:{platform.dm_chat}"])
        assert gone.exit_code == 0 and users.find(host.conn, "telegram", platform.dm_chat).role == "member"
        again = CliRunner().invoke(main, ["--home", home, "owner", "unlink", f"telegram:{platform.dm_chat}"])
        assert again.exit_code == 1 and "is not an owner" in again.output
        assert host.gate.admin_route().channel_type == "web"  # a member's chat cannot answer cards


def test_owner_link_codes_expire_and_ignore_other_text(tmp_path: Path) -> None:
    from nanoclaw import db

    conn = db.connect(tmp_path / "nanoclaw.db")
    code = owner_links.create(conn, ttl=60)
    conn.execute("UPDATE owner_links SET expires_at = ?", (time.time() - 1,))
    assert owner_links.redeem(conn, code, "telegram:1") is False
    assert owner_links.normalise("abcd-efgh") == "ABCDEFGH"
    assert owner_links.normalise("ABCD-EFG0") is None  # 0, O, 1 and I are never in a code
    assert owner_links.normalise("hello there") is None and owner_links.normalise("K7PQ 2MXA") == "K7PQ2MXA"


async def _card(platform: TelegramPlatform | SlackPlatform, title: str):  # type: ignore[no-untyped-def]
    async def cards():  # type: ignore[no-untyped-def]
        return [m for m in await platform.bot_messages(platform.dm_chat) if title in m.text and m.buttons]

    deadline = time.monotonic() + 30
    while not await cards():
        assert time.monotonic() < deadline, await platform.bot_messages()
        await asyncio.sleep(0.05)
    return (await cards())[-1]


def approvals_decided(host) -> str:  # type: ignore[no-untyped-def]
    return host.conn.execute("SELECT id FROM approvals WHERE kind = 'new_chat'").fetchone()[0]
