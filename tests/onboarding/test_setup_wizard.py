"""From token to first answer: `nanoclaw setup` checks the Telegram token against the (fake) Bot API as soon as it
is typed, asks again when it is refused, says who the bot is, and ends with a code; the owner sends the code to the
bot, and the next message is answered — no other command. The real python-telegram-bot, a real host and sandbox."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.config import Settings
from nanoclaw.db import users
from nanoclaw.host.app import Host
from tests.channels.platforms.telegram import TelegramPlatform
from tests.fakes.telegram_server import TOKEN
from tests.onboarding.helpers import wait_until
from tests.unit.isolated_user import user_env  # noqa: F401 - fixture

pytestmark = pytest.mark.sandbox


async def test_setup_from_token_to_first_answer_links_the_owner(user_env: dict[str, str], tmp_path: Path,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    platform = TelegramPlatform()
    env = await platform.start(tmp_path)
    monkeypatch.setenv("TELEGRAM_API_BASE", env["TELEGRAM_API_BASE"])  # where the fake Bot API listens
    monkeypatch.setenv("TELEGRAM_FILE_BASE", env["TELEGRAM_FILE_BASE"])
    monkeypatch.setenv("NANOCLAW_HOME", str(tmp_path / "h"))  # short: the proxy's socket paths must fit AF_UNIX
    answers = ["",  # no Anthropic key
               "",  # provider: mock
               "",  # name: Andy
               "terminal, telegram",
               "123456:mistyped-token",  # refused by Telegram at once
               "y",  # type it again
               TOKEN,
               "n"]  # no service
    try:
        result = await asyncio.to_thread(CliRunner().invoke, main, ["setup"], input="\n".join(answers) + "\n")
        out = result.output
        assert result.exit_code == 0, out
        assert "Telegram rejected TELEGRAM_BOT_TOKEN" in out and "copy it again from @BotFather" in out
        assert "telegram: settings accepted, the bot is @" in out
        assert "Another telegram variable name" not in out and "mistyped-token" not in out and TOKEN not in out
        [code] = re.findall(r"^\s+([A-Z2-9]{4}-[A-Z2-9]{4})$", out, re.M)

        settings = Settings.load(web_port=0)
        assert settings.extra["TELEGRAM_BOT_TOKEN"] == TOKEN and settings.channel_enabled("telegram")
        host = Host(settings)
        await host.start()
        try:
            assert await host.starter.wait(30)  # channels connect in the background
            assert host.channel_health()["telegram"]["state"] == "connected"
            await platform.user_says(code, dm=True)  # the owner, from their own Telegram account
            await wait_until(lambda: any("Linked" in m.text for m in platform.fake.sent if m.chat == platform.dm_chat),
                             timeout=30)
            assert users.find(host.conn, "telegram", platform.dm_chat).role == "owner"
            await platform.user_says("[mock:reply=hello, owner]", dm=True)
            await wait_until(lambda: any(m.text == "hello, owner" for m in platform.fake.sent), timeout=60)
        finally:
            await host.stop()
    finally:
        await platform.stop()
