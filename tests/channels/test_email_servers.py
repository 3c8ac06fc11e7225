"""Email against servers a new user meets: STARTTLS or TLS with a private CA (Proton Mail Bridge, a home server),
a relay without a login, an untrusted certificate. The real aioimaplib and aiosmtplib talk to the fake servers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.email import EmailChannel
from nanoclaw.errors import ConfigError
from nanoclaw.protocol.messages import Route
from tests.channels.harness import RecordingHost
from tests.channels.platforms.email import BOT_ADDRESS, EmailPlatform
from tests.conftest import make_settings


@asynccontextmanager
async def mail_channel(tmp: Path, platform: EmailPlatform, **env: str) -> AsyncIterator[tuple[RecordingHost, EmailChannel]]:
    settings_env = {**await platform.start(tmp), **env}
    host = RecordingHost(make_settings(tmp / "home", extra=settings_env))
    channel = EmailChannel(host)
    try:
        await channel.start()
        yield host, channel
    finally:
        await channel.stop()
        await platform.stop()


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
async def test_email_channel_health_connected_over_tls_with_a_private_ca(tmp_path: Path, tls: str) -> None:
    platform = EmailPlatform(tls=tls)
    async with mail_channel(tmp_path, platform) as (host, channel):
        assert channel.health.state == "connected"
        await platform.user_says("over TLS", dm=True)
        [event] = await host.wait_events(1)
        await channel.send(OutgoingMessage(route=Route("email", event.platform_id), kind="chat", text="secure", id="o1"))
        [sent] = await platform.wait_bot_messages(1)
    assert "over TLS" in event.text and sent.text.strip() == "secure" and sent.raw["login"] == BOT_ADDRESS
    if tls == "starttls":
        assert any(c.endswith("STARTTLS") for c in platform.imap.commands)  # upgraded before LOGIN
        assert platform.imap.commands.index(next(c for c in platform.imap.commands if c.endswith("STARTTLS"))) < \
            platform.imap.commands.index(next(c for c in platform.imap.commands if "LOGIN" in c))


async def test_email_channel_health_failed_on_an_untrusted_certificate_says_the_fix(tmp_path: Path) -> None:
    platform = EmailPlatform(tls="starttls", trust=False)
    with pytest.raises(ConfigError) as caught:
        async with mail_channel(tmp_path, platform):
            pass
    assert "certificate this computer does not trust" in caught.value.reason
    assert "EMAIL_CA_FILE" in caught.value.fix


async def test_email_smtp_relay_without_login_sends(tmp_path: Path) -> None:
    platform = EmailPlatform(smtp_auth=False)
    async with mail_channel(tmp_path, platform) as (host, channel):
        await channel.send(OutgoingMessage(route=Route("email", "bob@example.com"), kind="chat", text="hi", id="o1"))
        [sent] = await platform.wait_bot_messages(1)
    assert sent.raw["login"] is None and sent.raw["rcpt"] == ["bob@example.com"]


async def test_email_smtp_login_against_a_relay_without_auth_is_a_config_error(tmp_path: Path) -> None:
    platform = EmailPlatform(smtp_auth=False)
    env = await platform.start(tmp_path)
    env.pop("EMAIL_SMTP_AUTH")
    try:
        with pytest.raises(ConfigError, match="EMAIL_SMTP_AUTH=none"):
            await EmailChannel.identify(make_settings(tmp_path / "home", extra=env))
    finally:
        await platform.stop()


async def test_email_identify_logs_in_to_both_servers(tmp_path: Path) -> None:
    platform = EmailPlatform(tls="starttls")
    env = await platform.start(tmp_path)
    try:
        who = await EmailChannel.identify(make_settings(tmp_path / "home", extra=env))
        assert who.startswith(BOT_ADDRESS) and platform.imap.logins == 1
        with pytest.raises(ConfigError, match="refused the login"):
            await EmailChannel.identify(make_settings(tmp_path / "home", extra={**env, "EMAIL_PASSWORD": "wrong"}))
        with pytest.raises(ConfigError, match="EMAIL_CA_FILE"):
            await EmailChannel.identify(make_settings(tmp_path / "home", extra={**env, "EMAIL_CA_FILE": ""}))
    finally:
        await platform.stop()
