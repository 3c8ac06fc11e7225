"""Logs never carry message bodies above DEBUG, nor secrets from the environment."""

from __future__ import annotations

import logging

import pytest

from nanoclaw.host.app import Host
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox

BODY = "my bank PIN is 4921-unique-body"


async def test_info_logs_hold_no_message_bodies(host: Host, caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN_FOR_TEST", "s3cr3t-value")
    caplog.set_level(logging.INFO, logger="nanoclaw")
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(BODY)
    await ch.wait_sent(1)
    await ch.say("x" * 2_000_000)  # rejected: logged with its reason, not its body
    await ch.say("[mock:crash] " + BODY)  # failures are logged too
    await ch.wait_sent(2, timeout=30)
    assert caplog.records, "nothing was logged at INFO"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "4921-unique-body" not in logged and "xxxxxxxx" not in logged and "s3cr3t-value" not in logged
    runner_logs = "".join(p.read_text(errors="replace") for p in (host.settings.logs_dir / "runners").glob("*.log"))
    assert "4921-unique-body" not in runner_logs and "s3cr3t-value" not in runner_logs
