"""`Channel.identify`: each platform's "who am I" for a token, on its real client library against the fake server —
what `nanoclaw setup` says right after the token is typed, and what doctor checks while the host is stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw.errors import ChannelUnavailable, ConfigError
from tests.channels.conftest import PLATFORMS
from tests.conftest import make_settings

WRONG = {"telegram": ("TELEGRAM_BOT_TOKEN", "123456:not-the-token", "rejected TELEGRAM_BOT_TOKEN"),
         "slack": ("SLACK_BOT_TOKEN", "xoxb-not-the-token", "refused SLACK_BOT_TOKEN"),
         "discord": ("DISCORD_BOT_TOKEN", "not-the-token", "refused DISCORD_BOT_TOKEN")}
WHO = {"telegram": "@", "slack": "@andy in the Fake workspace", "discord": "(id "}


@pytest.mark.parametrize("name", sorted(WRONG))
async def test_identify_says_who_the_bot_is_and_refuses_a_wrong_token(name: str, tmp_path: Path) -> None:
    platform = PLATFORMS[name]()
    env = await platform.start(tmp_path)
    try:
        cls = platform.channel_class()
        who = await cls.identify(make_settings(tmp_path / "home", extra=env))
        assert WHO[name] in who, who
        variable, wrong, says = WRONG[name]
        with pytest.raises(ConfigError) as refused:
            await cls.identify(make_settings(tmp_path / "home", extra={**env, variable: wrong}))
        assert says in str(refused.value) and refused.value.fix and wrong not in str(refused.value)
        with pytest.raises(ConfigError, match=variable):
            await cls.identify(make_settings(tmp_path / "home", extra={k: v for k, v in env.items() if k != variable}))
    finally:
        await platform.stop()


async def test_identify_unreachable_platform_is_not_a_settings_problem(tmp_path: Path) -> None:
    platform = PLATFORMS["telegram"]()
    env = await platform.start(tmp_path)
    await platform.stop()  # nothing listens there any more
    with pytest.raises(ChannelUnavailable):
        await platform.channel_class().identify(make_settings(tmp_path / "home", extra=env))
