"""The channel step of `nanoclaw setup`: each chat app's settings, checked against the platform as soon as they
are typed (who the bot is), and the owner's first chat linked with a one-time code — from token to an answered
message without another command.

A channel names the settings it needs (`Channel.settings_asked`); only a plugin that names none is asked for
variable names. `Channel.identify` checks them (Telegram getMe, Slack auth.test, Discord /users/@me, Matrix
whoami, IMAP and SMTP logins); a refused token is asked again.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace

import click

from nanoclaw import registry
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError

IDENTIFY_TIMEOUT = 20.0
TRIES = 3
LOCAL = ("terminal", "web")
LINK_TTL = 24 * 3600  # setup is often followed by installing the service, or by tomorrow


def done(text: str) -> None:
    click.echo(click.style("  ✓ ", fg="green") + text)


def note(text: str) -> None:
    click.echo(click.style("  ! ", fg="yellow") + text)


def settings_asked(channel: str) -> tuple[str, ...]:
    """The variables a channel says its owner sets (empty for a plugin that says nothing)."""
    try:
        return tuple(registry.load(registry.CHANNELS, channel).settings_asked)
    except (LookupError, ImportError, AttributeError):
        return ()


def _secret(value: str) -> str:
    if not value.strip():
        return ""
    if re.search(r"[\r\n\0]", value):
        raise click.BadParameter("the value must be one line")
    return value.strip()


class ChannelStep:
    """Asks for, and checks, each chosen channel's settings; `secrets_to_save` collects what is new."""

    def __init__(self, current: Settings, saved: dict[str, str], to_save: dict[str, str], interactive: bool) -> None:
        self.current = current
        self.saved = saved
        self.to_save = to_save
        self.interactive = interactive
        self.bots: dict[str, str] = {}  # channel → who the bot is there (when checked)

    def ask(self, channel: str) -> None:
        """A channel's tokens are variables named CHANNEL_*, e.g. TELEGRAM_BOT_TOKEN."""
        prefix = channel.upper().replace("-", "_") + "_"
        saved = sorted(k for k in self.saved if k.startswith(prefix))
        if not self.interactive:
            for name in sorted(k for k in os.environ if k.startswith(prefix) and os.environ[k]):
                if self.saved.get(name) != os.environ[name]:
                    self.to_save[name] = os.environ[name]
            if not saved and not any(k.startswith(prefix) for k in self.to_save):
                note(f"{channel}: no {prefix}* variable in the environment (e.g. {prefix}TOKEN); it may not start")
            self.check(channel)
            return
        for name in saved:
            value = click.prompt(f"  {name} (hidden; Enter keeps the saved value)", default="", show_default=False,
                                 hide_input=True, value_proc=_secret)
            if value:
                self.to_save[name] = value
        asked = [n for n in settings_asked(channel) if n not in saved]
        if asked:
            click.echo(f"  How to get them: docs/channels/{channel}.md (Enter skips one).")
        self._prompt(asked)
        if not settings_asked(channel):
            self._free_names(channel, prefix)
        for _ in range(TRIES):
            if self.check(channel) != "refused" or not click.confirm(f"  Type {channel}'s settings again?",
                                                                     default=True):
                return
            self._prompt([n for n in settings_asked(channel)] or saved)

    def _prompt(self, names: list[str]) -> None:
        for name in names:
            hidden = any(word in name for word in ("TOKEN", "SECRET", "PASSWORD", "KEY"))
            value = click.prompt(f"  {name}" + (" (hidden)" if hidden else ""), default="", show_default=False,
                                 hide_input=hidden, value_proc=_secret)
            if value:
                self.to_save[name] = value

    def _free_names(self, channel: str, prefix: str) -> None:
        """A plugin that names no settings: its docs say which; ask for their names."""

        def var_name(value: str) -> str:
            value = value.strip().upper()
            if value and not re.fullmatch(re.escape(prefix) + r"[A-Z0-9_]+", value):
                raise click.BadParameter(f"{channel}'s settings are named {prefix}SOMETHING, e.g. {prefix}TOKEN")
            return value

        click.echo(f"  {channel} does not say which settings it needs: see its documentation. "
                   f"They are named {prefix}…, e.g. {prefix}TOKEN.")
        while True:
            name = click.prompt(f"  A {channel} setting's name (Enter when done)", default="", show_default=False,
                                value_proc=var_name)
            if not name:
                return
            value = click.prompt(f"  {name} (hidden)", hide_input=True, value_proc=_secret)
            if value:
                self.to_save[name] = value

    def check(self, channel: str) -> str:
        """Ask the platform who the bot is with these settings: ok, refused, unreachable or unchecked."""
        try:
            cls = registry.load(registry.CHANNELS, channel)
        except ImportError as exc:
            note(f"{channel}: its library is not installed ({exc.name or exc}): pip install 'nanoclaw[channels]'")
            return "unchecked"
        except LookupError:
            return "unchecked"
        settings = replace(self.current, extra={**self.current.extra, **self.saved, **self.to_save})
        try:
            who = asyncio.run(asyncio.wait_for(cls.identify(settings), IDENTIFY_TIMEOUT))
        except ConfigError as exc:
            note(f"{channel}: {exc.reason}" + (f"\n    fix: {exc.fix}" if exc.fix else ""))
            return "refused"
        except (ChannelUnavailable, OSError, asyncio.TimeoutError) as exc:
            note(f"{channel}: could not check the settings now ({exc or type(exc).__name__}); "
                 "nanoclaw doctor checks them again")
            return "unreachable"
        except Exception as exc:  # noqa: BLE001 - a plugin's check must not stop the wizard
            note(f"{channel}: the check failed ({type(exc).__name__}: {exc})")
            return "unreachable"
        if not who:
            return "unchecked"
        self.bots[channel] = who
        done(f"{channel}: settings accepted, the bot is {who}")
        return "ok"


def link_first_chat(settings: Settings, channels: list[str], bots: dict[str, str], host_running: bool) -> None:
    """The last step: a one-time code the owner sends to the bot from their own account; that chat becomes theirs
    (wired to main, cards come there). With the host running, wait a little for it."""
    from nanoclaw import db
    from nanoclaw.db import owner_links

    apps = [c for c in channels if c not in LOCAL]
    if not apps or not settings.db_path.exists():
        return
    conn = db.connect(settings.db_path)
    try:
        code = owner_links.create(conn, LINK_TTL)
    finally:
        conn.close()
    shown = f"{code[:4]}-{code[4:]}"
    where = "; ".join(f"{c}: {bots[c]}" if c in bots else c for c in apps)
    click.echo()
    click.secho("Make the chat app yours", bold=True)
    click.echo(f"  {'Start NanoClaw (nanoclaw run, or the service), then send' if not host_running else 'Send'} "
               f"this code to the bot from your own account ({where}):\n\n      {shown}\n\n"
               "  That chat becomes yours: the assistant answers you there and asks you there (approvals, new\n"
               f"  chats). The code works once, for {LINK_TTL // 3600} hours; link more accounts with: "
               "nanoclaw owner link")
