"""Channel health: each channel says connected, retrying (reason, next try) or failed (reason, fix); `nanoclaw
status`, doctor and the dashboard show it, and doctor fails while a configured channel cannot connect.
Email against the fake IMAP and SMTP servers (TLS from a private CA), Telegram against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.db import approvals
from nanoclaw.host.app import Host
from tests.channels.platforms.email import EmailPlatform
from tests.channels.platforms.telegram import TelegramPlatform
from tests.onboarding.helpers import wait_until, web_card, web_says
from tests.onboarding.platform_host import host_with

pytestmark = pytest.mark.sandbox


async def cli(home: Path, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, main, ["--home", str(home), *args])
    return result.exit_code, result.output


async def dashboard(host: Host, path: str) -> dict:  # type: ignore[type-arg]
    token = host.web.login_link.split("token=")[1]
    async with aiohttp.ClientSession(base_url=host.web_url, headers={"Authorization": f"Bearer {token}"}) as api:
        async with api.get(path) as r:
            assert r.status == 200
            return await r.json()  # type: ignore[no-any-return]


async def test_channel_health_bad_certificate_is_failed_in_doctor_status_and_dashboard(tmp_path: Path) -> None:
    platform = EmailPlatform(tls="starttls", trust=False)  # a self-signed server, EMAIL_CA_FILE not set
    async with host_with(platform, tmp_path) as host:
        health = host.channel_health()["email"]
        assert health["state"] == "failed" and "does not trust" in health["reason"]
        assert "EMAIL_CA_FILE" in health["fix"]

        home = tmp_path / "home"
        code, out = await cli(home, "doctor", "--json")
        assert code == 1
        [check] = [c for c in json.loads(out) if c["name"] == "channel email"]
        assert not check["ok"] and "certificate" in check["detail"] and "EMAIL_CA_FILE" in check["fix"]
        code, out = await cli(home, "status")
        assert code == 0 and "email        failed (the IMAP server 127.0.0.1:" in out and "fix: if the server" in out

        overview = await dashboard(host, "/api/dashboard")
        assert overview["status"]["channel_health"]["email"]["state"] == "failed"
        people = await dashboard(host, "/api/dashboard/people")
        [email] = [c for c in people["channels"] if c["name"] == "email"]
        assert email["state"] == "failed" and "EMAIL_CA_FILE" in email["fix"] and email["new_chats"] == "ask"
        assert {c["name"]: c["state"] for c in people["channels"]}["web"] == "connected"


async def test_channel_health_doctor_checks_the_token_while_the_host_is_stopped(tmp_path: Path) -> None:
    good, bad = EmailPlatform(tls="ssl"), EmailPlatform(tls="ssl", trust=False)
    for platform, ok in ((good, True), (bad, False)):
        env = await platform.start(tmp_path / f"mail-{ok}")
        home = tmp_path / f"home-{ok}"
        home.mkdir()
        (home / "config.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        try:
            code, out = await cli(home, "doctor", "--json")
        finally:
            await platform.stop()
        [check] = [c for c in json.loads(out) if c["name"] == "channel email"]
        assert check["ok"] is ok, check
        if ok:
            assert check["detail"] == ("settings accepted: the bot is andy@example.com (IMAP 127.0.0.1:"
                                       f"{platform.imap.port}, SMTP 127.0.0.1:{platform.smtp.port})")
        else:
            assert "does not trust" in check["detail"] and "EMAIL_CA_FILE" in check["fix"]


async def test_channel_health_retrying_while_the_server_is_down_then_connected(tmp_path: Path) -> None:
    platform = EmailPlatform()
    async with host_with(platform, tmp_path) as host:
        assert host.channel_health()["email"]["state"] == "connected"
        await platform.imap.stop()
        await wait_until(lambda: host.channel_health()["email"]["state"] == "retrying")
        health = host.channel_health()["email"]
        assert health["reason"] and health["next_try"] > time.time() - 1 and "next try in" in health["text"]
        code, out = await cli(tmp_path / "home", "doctor", "--json")
        [check] = [c for c in json.loads(out) if c["name"] == "channel email"]
        assert code == 1 and not check["ok"] and check["detail"].startswith("retrying (")
        await platform.imap.start()  # back on the same port
        await wait_until(lambda: host.channel_health()["email"]["state"] == "connected", timeout=20)


async def test_channel_health_telegram_refused_token_is_failed_with_the_fix(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    async with host_with(platform, tmp_path, TELEGRAM_BOT_TOKEN="123456:wrong-token") as host:
        health = host.channel_health()["telegram"]
        assert health["state"] == "failed" and "rejected TELEGRAM_BOT_TOKEN" in health["reason"]
        assert "telegram" not in host.channels


async def test_channel_health_email_new_address_answered_after_the_owners_button(tmp_path: Path) -> None:
    platform = EmailPlatform(tls="starttls")  # as Proton Mail Bridge: STARTTLS, its own certificate
    async with host_with(platform, tmp_path) as host:
        assert host.channel_health()["email"]["state"] == "connected"
        await platform.user_says("Can you find me a train to Lyon?", dm=True, chat="newcomer@example.com",
                                 sender_name="Nina")
        card = await web_card(host, "New chat")
        assert "Nina (email:newcomer@example.com)" in card["text"] and "train to Lyon" in card["text"]
        await asyncio.sleep(0.3)
        assert platform.smtp.sent == []  # nothing goes out before the owner chose
        await host.answer(card["card_id"], "Answer with main", "owner")
        [reply] = await platform.wait_bot_messages(1, "newcomer@example.com", timeout=30)
        assert "train to Lyon" in reply.text and reply.raw["subject"] == "Re: Hello"
        await web_says(host, "1 waiting message went through")
        assert approvals.get(host.conn, card["card_id"]).status == "approved"
