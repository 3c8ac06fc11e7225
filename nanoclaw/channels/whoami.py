"""Each platform's "who am I" for a token, on its own client library: what `Channel.identify` answers for
`nanoclaw setup` (right after the token is typed) and for doctor while the host is stopped.

Telegram getMe, Slack auth.test, Discord /users/@me, Matrix whoami (or a login with the password). A refused
token is a ConfigError saying where to get a good one; an unreachable platform is ChannelUnavailable. Each
library is imported inside its function: only the channels being checked are loaded.
"""

from __future__ import annotations

import asyncio
from typing import Mapping

from nanoclaw.errors import ChannelUnavailable, ConfigError


def _need(extra: Mapping[str, str], name: str, what: str) -> str:
    value = (extra.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {what}")
    return value


async def telegram(extra: Mapping[str, str]) -> str:
    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError

    token = _need(extra, "TELEGRAM_BOT_TOKEN", "create a bot with @BotFather in Telegram (/newbot) and paste its token")
    bot = Bot(token, base_url=extra.get("TELEGRAM_API_BASE") or "https://api.telegram.org/bot")
    try:
        await bot.initialize()
        me = bot.bot
    except InvalidToken as exc:
        raise ConfigError("Telegram rejected TELEGRAM_BOT_TOKEN",
                          "copy it again from @BotFather (/mybots → API Token)") from exc
    except TelegramError as exc:
        raise ChannelUnavailable(f"cannot reach Telegram: {str(exc).replace(token, '…')}") from exc
    finally:
        await bot.shutdown()
    return f"@{me.username} ({me.first_name})"


async def slack(extra: Mapping[str, str]) -> str:
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    token = _need(extra, "SLACK_BOT_TOKEN", "api.slack.com/apps → your app → OAuth & Permissions → Bot User "
                                            "OAuth Token (xoxb-…)")
    client = AsyncWebClient(token=token, base_url=extra.get("SLACK_API_URL") or "https://slack.com/api/")
    try:
        me = await client.auth_test()
    except SlackApiError as exc:
        code = str(exc.response.get("error") or exc.response.status_code)
        if exc.response.status_code >= 500 or code in ("ratelimited", "service_unavailable", "request_timeout"):
            raise ChannelUnavailable(f"Slack is not answering now ({code})") from exc
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({code})",
                          "copy the Bot User OAuth Token again from OAuth & Permissions") from exc
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ChannelUnavailable(f"cannot reach Slack: {type(exc).__name__}") from exc
    return f"@{me.get('user')} in the {me.get('team')} workspace"


async def discord(extra: Mapping[str, str]) -> str:
    import discord as lib
    from discord.http import Route

    token = _need(extra, "DISCORD_BOT_TOKEN", "https://discord.com/developers/applications → your app → Bot → "
                                              "Reset Token")
    saved = Route.BASE  # discord.py reads its REST base from the class only (see channels/discord.py)
    Route.BASE = (extra.get("DISCORD_API_BASE") or "https://discord.com/api/v10").rstrip("/")
    http = lib.http.HTTPClient(asyncio.get_running_loop())
    try:
        me = await http.static_login(token)
    except lib.LoginFailure as exc:
        raise ConfigError("Discord refused DISCORD_BOT_TOKEN",
                          "reset the token (Bot → Reset Token) and paste the new one") from exc
    except (lib.HTTPException, lib.GatewayNotFound, OSError, asyncio.TimeoutError) as exc:
        raise ChannelUnavailable(f"cannot reach Discord: {type(exc).__name__}") from exc
    finally:
        await http.close()
        Route.BASE = saved
    return f"{me.get('username')} (id {me.get('id')})"


async def matrix(extra: Mapping[str, str]) -> str:
    from nio import AsyncClient, AsyncClientConfig, ErrorResponse

    homeserver = _need(extra, "MATRIX_HOMESERVER", "the URL of the bot's homeserver, e.g. https://matrix.org")
    user_id = _need(extra, "MATRIX_USER_ID", "the bot account's full id, e.g. @andy:matrix.org")
    token, password = extra.get("MATRIX_ACCESS_TOKEN"), extra.get("MATRIX_PASSWORD")
    if not token and not password:
        raise ConfigError("set MATRIX_ACCESS_TOKEN (Element: Settings → Help & About → Access Token) "
                          "or MATRIX_PASSWORD for the bot account")
    client = AsyncClient(homeserver.rstrip("/"), user_id,
                         config=AsyncClientConfig(max_timeouts=0, request_timeout=20, encryption_enabled=False))
    try:
        if token:
            client.restore_login(user_id, extra.get("MATRIX_DEVICE_ID") or "", token)
            resp = await client.whoami()
        else:
            resp = await client.login(password or "", device_name="NanoClaw setup check")
            if not isinstance(resp, ErrorResponse):
                await client.logout()  # the check leaves no device behind
    except (OSError, asyncio.TimeoutError) as exc:
        raise ChannelUnavailable(f"cannot reach {homeserver}: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - nio raises aiohttp's errors as they come
        raise ChannelUnavailable(f"cannot reach {homeserver}: {type(exc).__name__}: {exc}") from exc
    finally:
        await client.close()
    if isinstance(resp, ErrorResponse):
        status = str(getattr(resp, "status_code", "") or "")
        if status.startswith("M_") and status not in ("M_LIMIT_EXCEEDED",):
            raise ConfigError(f"the homeserver refused the bot's login ({status}: {resp.message})",
                              "check MATRIX_ACCESS_TOKEN, or MATRIX_USER_ID and MATRIX_PASSWORD")
        raise ChannelUnavailable(f"{homeserver} answered {status or 'an error'}: {resp.message}")
    return user_id
