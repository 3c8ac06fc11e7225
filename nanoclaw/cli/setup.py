"""`nanoclaw setup` — a wizard that checks the machine and saves the person's answers.

Answers go to two files, both mode 0600:

* `NANOCLAW_HOME/config.env` — assistant name, provider, channels (no secrets);
* `~/.config/nanoclaw/credentials.env` (XDG_CONFIG_HOME honoured) — the model
  key and channel tokens, outside the project and outside the folders mounted
  into sandboxes. The vault will take these over.

`nanoclaw.config.Settings.load` reads both, so a second run starts from the
first run's answers. Secrets never come from the command line: the wizard asks
with hidden input; `--non-interactive` reads them from the environment or,
with `--key-stdin`, from standard input.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any

import click

from nanoclaw import envfile, registry
from nanoclaw.cli.options import home_option
from nanoclaw.cli.doctor import run_checks, runtime_check, settings_or_defaults
from nanoclaw.cli.setup_channels import ChannelStep, link_first_chat
from nanoclaw.config import Settings
from nanoclaw.errors import ConfigError, NanoClawError
from nanoclaw.sandbox import detect

KEY_VAR = "ANTHROPIC_API_KEY"
KEY_URL = "https://console.anthropic.com/settings/keys"
STEPS = 6
PROVIDER_BLURBS = {
    "claude": "Claude through the Anthropic API (needs an API key)",
    "mock": "built-in canned answers: try NanoClaw without a key",
    "openai": "any OpenAI-compatible endpoint, e.g. a local model",
}
CONFIG_HEADER = """NanoClaw settings, written by `nanoclaw setup` (re-run it to change them, or edit).
Secrets are not kept here: see {credentials}.
Precedence: this file < ./.env < environment variables < command-line options."""
CREDENTIALS_HEADER = """NanoClaw secrets, written by `nanoclaw setup`. Keep this file private (mode 0600).
The host reads the model key and channel tokens from here; the sandboxes never see them."""


@dataclass
class Answers:
    runtime: str
    provider: str
    assistant_name: str
    channels: list[str]
    runtime_asked: bool = False


OPENAI_URL = "https://api.openai.com/v1"


def check_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise click.BadParameter(f"{value!r} is not an http(s) URL, e.g. http://localhost:11434/v1")
    return value


def mask(secret: str) -> str:
    """Enough of a key to recognise it, not enough to use it."""
    return f"{secret[:7]}…{secret[-4:]}" if len(secret) >= 16 else "…"


def check_key(value: str) -> str:
    key = value.strip()
    if not key:
        raise click.BadParameter("the key is empty")
    if re.search(r"\s", key) or not key.isascii() or not key.isprintable():
        raise click.BadParameter("a key is one word of plain characters; paste it again")
    if len(key) < 20:
        raise click.BadParameter(f"Anthropic keys start with sk-ant- and are about 100 characters long, this one has "
                                 f"{len(key)}; copy it again from {KEY_URL}")
    return key


def check_name(value: str) -> str:
    name = value.strip()
    try:
        Settings(assistant_name=name).validate()
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc
    return name


def check_channels(value: str | list[str] | tuple[str, ...]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = [c.strip().lower() for c in items if c.strip()]
    installed = registry.names(registry.CHANNELS)
    missing = [c for c in wanted if c not in installed]
    if missing:
        raise click.BadParameter(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed (installed: "
            f"{', '.join(installed)}); add one with: pip install nanoclaw-{missing[0]}"
        )
    return sorted(set(wanted) | {"terminal"}, key=lambda c: (c != "terminal", c))


def _step(number: int, title: str) -> None:
    click.echo()
    click.secho(f"[{number}/{STEPS}] {title}", bold=True)


def _done(text: str) -> None:
    click.echo(click.style("  ✓ ", fg="green") + text)


def _note(text: str) -> None:
    click.echo(click.style("  ! ", fg="yellow") + text)


class Wizard:
    """One run of `nanoclaw setup`: ask (or take from options), validate, save."""

    def __init__(self, ctx: click.Context, interactive: bool) -> None:
        self.ctx = ctx
        self.interactive = interactive
        try:
            self.current = Settings.load(home=ctx.obj.get("home"))
        except NanoClawError as exc:
            _note(f"the saved settings do not load ({exc}); starting from the defaults")
            self.current = settings_or_defaults(ctx)
        self.saved_secrets = envfile.read(self.current.credentials_file)
        self.secrets_to_save: dict[str, str] = {}  # new values only
        self.channel_step = ChannelStep(self.current, self.saved_secrets, self.secrets_to_save, interactive)

    # -- steps -------------------------------------------------------------------

    def sandbox(self, runtime: str | None) -> tuple[str, bool]:
        """The runtime given, saved earlier, or detected; no question (`--runtime` chooses another)."""
        _step(1, "Sandbox")
        installed = registry.names(registry.RUNTIMES)
        chosen = bool(runtime)
        runtime = runtime or self.current.runtime or detect.detect()
        if runtime not in installed:
            raise click.ClickException(f"sandbox runtime {runtime!r} is not installed (installed: {', '.join(installed)})")
        check = runtime_check(self.current.with_overrides(runtime=runtime))
        if check.ok:
            _done(f"{check.name} works: {check.detail}")
            self._offer_gvisor(runtime)
            return runtime, chosen
        _note(f"{check.name}: {check.detail}")
        click.echo(f"    fix: {check.fix}")
        click.echo("    Agents cannot run until this is fixed; `nanoclaw doctor` checks it again.")
        if self.interactive and not click.confirm("  Continue the setup anyway?", default=True):
            raise click.ClickException("setup stopped: fix the sandbox, then run `nanoclaw setup` again")
        return runtime, chosen

    def _offer_gvisor(self, runtime: str) -> None:
        """Where gVisor is installed, say how to put a user-space kernel between the agents and this one."""
        if runtime == "gvisor" or "gvisor" not in registry.names(registry.RUNTIMES):
            return
        from nanoclaw.sandbox.gvisor import runsc_path

        if runsc_path() is None:
            return
        check = detect.check("gvisor")
        if check.ok:
            _note("gVisor works here too: agents behind a user-space kernel, slower to start "
                  "(nanoclaw setup --runtime gvisor)")
        else:
            _note(f"gVisor is installed but cannot run yet: {check.detail}; fix: {check.fix}")

    def model(self, provider: str | None, key_stdin: bool) -> str:
        _step(2, "Model")
        providers = registry.names(registry.PROVIDERS)
        new_key = self._read_key_stdin() if key_stdin else None
        known_key = new_key or self.current.extra.get(KEY_VAR) or self.current.extra.get("ANTHROPIC_AUTH_TOKEN")
        if self.interactive and new_key is None:
            new_key = self._ask_key(known_key)
            known_key = new_key or known_key
        elif not self.interactive and new_key is None and os.environ.get(KEY_VAR):
            try:
                new_key = check_key(os.environ[KEY_VAR])
            except click.BadParameter as exc:
                raise click.ClickException(f"${KEY_VAR}: {exc.message}") from exc
        if new_key and self.saved_secrets.get(KEY_VAR) != new_key:
            self.secrets_to_save[KEY_VAR] = new_key
        if new_key and "claude" in providers:
            default = "claude"  # a key was just given: that is what it is for
        else:
            default = self.current.provider or ("claude" if known_key and "claude" in providers else "mock")

        def valid_provider(value: str) -> str:
            value = value.strip().lower()
            if value not in providers:
                raise click.BadParameter(f"{value!r} is not installed; choose one of: {', '.join(providers)}")
            if value == "claude" and not known_key:
                raise click.BadParameter(
                    "claude needs an Anthropic key: run setup again and paste one, or choose mock for now"
                )
            return value

        if provider is None and self.interactive:
            for name in providers:
                click.echo(f"  {name:<8} {PROVIDER_BLURBS.get(name, '')}".rstrip())
            provider = click.prompt(f"Provider ({', '.join(providers)})", default=default, value_proc=valid_provider)
        else:
            try:
                provider = valid_provider(provider or default)
            except click.BadParameter as exc:
                hint = (f" Set {KEY_VAR} in the environment, or pipe it: "
                        f"printf '%s' \"$KEY\" | nanoclaw setup --non-interactive --key-stdin") if "key" in str(exc) else ""
                raise click.ClickException(f"provider: {exc.message}.{hint}") from exc
        _done(f"provider {provider}" + (f", key {mask(known_key)}" if known_key and provider == "claude" else ""))
        if provider == "openai":
            self._openai_endpoint()
        return provider

    def _openai_endpoint(self) -> None:
        """Where the openai provider's model lives (OpenAI, Ollama, vLLM, OpenRouter…) and its key, if any."""
        url = os.environ.get("OPENAI_BASE_URL") or self.current.extra.get("OPENAI_BASE_URL") or OPENAI_URL
        key = os.environ.get("OPENAI_API_KEY") or None
        if self.interactive:
            url = click.prompt("  Base URL of the OpenAI-compatible API", default=url,
                               value_proc=check_url)
            saved = self.saved_secrets.get("OPENAI_API_KEY")
            text = "  Its API key (typing is hidden; Enter " + ("keeps the saved key)" if saved else "skips: none needed)")
            key = click.prompt(text, default="", show_default=False, hide_input=True).strip() or None
        if url != self.saved_secrets.get("OPENAI_BASE_URL"):
            self.secrets_to_save["OPENAI_BASE_URL"] = check_url(url)
        if key and key != self.saved_secrets.get("OPENAI_API_KEY"):
            self.secrets_to_save["OPENAI_API_KEY"] = key
        _done(f"model API {url}" + (f", key {mask(key)}" if key else ""))

    def _read_key_stdin(self) -> str:
        stdin = sys.stdin
        if stdin.isatty():
            raise click.ClickException(
                "--key-stdin reads the key from a pipe, e.g.: printf '%s' \"$KEY\" | nanoclaw setup "
                "--non-interactive --key-stdin"
            )
        try:
            return check_key(stdin.readline())
        except click.BadParameter as exc:
            raise click.ClickException(f"the key on standard input: {exc.message}") from exc

    def _ask_key(self, known: str | None) -> str | None:
        click.echo("  NanoClaw's agents think with Claude, through the Anthropic API. Without a key the\n"
                   "  mock provider answers with canned replies, so you can try everything first.")
        if known:
            where = "saved" if self.saved_secrets.get(KEY_VAR) == known else "found"
            text = f"Anthropic API key (typing is hidden; Enter keeps the {where} key {mask(known)})"
        else:
            text = f"Anthropic API key (typing is hidden; Enter skips; get one at {KEY_URL})"
        # No default shown in brackets: click would print it, and it is a secret.
        value = click.prompt(text, default="", show_default=False, hide_input=True,
                             value_proc=lambda v: check_key(v) if v.strip() else "")
        if value:
            _done(f"key {mask(value)} will be saved in {self.current.credentials_file}")
            return value
        if known and os.environ.get(KEY_VAR) == known and self.saved_secrets.get(KEY_VAR) != known:
            return known  # from this shell's environment: save it, or the service would not have it
        return None

    def name(self, given: str | None) -> str:
        _step(3, "Assistant name")
        if given is None and self.interactive:
            click.echo("  People call the assistant by name in group chats: @Name.")
            name = click.prompt("Assistant name", default=self.current.assistant_name, value_proc=check_name)
        else:
            try:
                name = check_name(given or self.current.assistant_name)
            except click.BadParameter as exc:
                raise click.ClickException(exc.message) from exc
        _done(f"name {name} (trigger @{name})")
        return name

    def channels(self, given: tuple[str, ...]) -> list[str]:
        _step(4, "Channels")
        installed = registry.names(registry.CHANNELS)
        listed = [c.strip() for c in self.current.channels.split(",") if c.strip()]
        default = ",".join(check_channels([c for c in listed if c in installed]))
        if not given and self.interactive:
            click.echo(f"  Installed: {', '.join(installed)}. terminal and web are always on (nanoclaw chat,\n"
                       "  nanoclaw web-url); each other app needs its token (docs/channels/<name>.md).")
            channels = click.prompt("Channels to enable, comma-separated", default=default, value_proc=check_channels)
        else:
            try:
                channels = check_channels(given or default.split(","))
            except click.BadParameter as exc:
                raise click.ClickException(f"channels: {exc.message}") from exc
        for channel in channels:
            if channel not in ("terminal", "web"):
                self.channel_step.ask(channel)
        _done("channels " + ", ".join(channels))
        return channels

    def save(self, answers: Answers) -> Settings:
        _step(5, "Saving")
        from nanoclaw import db
        from nanoclaw.host import bootstrap
        from nanoclaw.host.folders import prepare_group

        values: dict[str, str | None] = {
            "NANOCLAW_ASSISTANT_NAME": answers.assistant_name,
            "NANOCLAW_PROVIDER": answers.provider,
            "NANOCLAW_CHANNELS": ",".join(answers.channels),
        }
        if answers.runtime_asked or (self.current.runtime and answers.runtime != self.current.runtime):
            values["NANOCLAW_RUNTIME"] = answers.runtime
        settings = self.current.with_overrides(
            assistant_name=answers.assistant_name, provider=answers.provider,
            channels=",".join(answers.channels), runtime=answers.runtime,
        )
        try:
            bootstrap.ensure_home(settings)
            envfile.update(settings.config_file, values,
                           header=CONFIG_HEADER.format(credentials=self.current.credentials_file))
            _done(f"settings written to {settings.config_file} (mode 600)")
            if self.secrets_to_save:
                envfile.update(self.current.credentials_file, dict(self.secrets_to_save), header=CREDENTIALS_HEADER)
                names = ", ".join(sorted(self.secrets_to_save))
                _done(f"{names} stored in {self.current.credentials_file} (mode 600)")
            conn = db.connect(settings.db_path)
            try:
                fresh = bootstrap.first_run(conn, settings)
                prepare_group(settings, conn, "main", is_admin=True)
            finally:
                conn.close()
        except (OSError, NanoClawError) as exc:
            raise click.ClickException(f"could not save the setup: {exc}") from exc
        _rename_in_memory(settings, self.current.assistant_name)
        _done(f"home {settings.home} {'created' if fresh else 'ready'}: database, admin group main, terminal chat")
        return self._reload(settings, values)

    def _reload(self, settings: Settings, values: dict[str, str | None]) -> Settings:
        """The settings as the host will see them; say so when ./.env or the environment wins over the saved ones."""
        try:
            effective = Settings.load(home=self.ctx.obj.get("home"))
        except NanoClawError as exc:
            _note(f"the settings do not load now: {exc}")
            return settings
        for var, value in values.items():
            attr = var.removeprefix("NANOCLAW_").lower()
            if value is not None and str(getattr(effective, attr)) != value:
                _note(f"{var}={getattr(effective, attr)} from ./.env or the environment wins over the saved {value}")
        return effective

    # -- the run ---------------------------------------------------------------

    def run(self, *, runtime: str | None, provider: str | None, key_stdin: bool, assistant_name: str | None,
            channels: tuple[str, ...], install: bool | None) -> None:
        mode = "" if self.interactive else " (non-interactive)"
        click.secho(f"NanoClaw setup{mode} — home {self.current.home}", bold=True)
        if self.interactive:
            click.echo("Defaults are in [brackets]: press Enter to keep them. Ctrl-C stops without saving.")
        chosen_runtime, asked = self.sandbox(runtime)
        answers = Answers(
            runtime=chosen_runtime, runtime_asked=asked,
            provider=self.model(provider, key_stdin),
            assistant_name=self.name(assistant_name),
            channels=self.channels(channels),
        )
        settings = self.save(answers)
        self.service(settings, install)
        self.finish(settings)

    def service(self, settings: Settings, install: bool | None) -> None:
        _step(6, "Service")
        from nanoclaw import service
        from nanoclaw.cli.service import install_service

        try:
            manager = service.current_manager()
        except ConfigError as exc:
            _note(str(exc))
            return
        if install is None and self.interactive:
            reachable = manager.available()
            click.echo(f"  A {manager.name} service starts NanoClaw when you log in and restarts it if it fails."
                       + ("" if reachable else f"\n  ({manager.name} is not reachable from this shell: the file "
                                               "would be written, to be started from a login session.)"))
            install = click.confirm("Install the service now?", default=False)
        if install:
            install_service(settings)
        else:
            click.echo("  Skipped. Install it any time with: nanoclaw service install")

    def finish(self, settings: Settings) -> None:
        checks = run_checks(settings)
        problems = [c for c in checks if not c.ok or c.warn]
        click.echo()
        for check in problems:
            _note(f"{check.name}: {check.detail}" + (f" — fix: {check.fix}" if check.fix else ""))
        host_running = any(c.name == "host" and c.detail.startswith("running") for c in checks)
        if host_running:
            _note("the host is running with the old settings: restart it (Ctrl-C and `nanoclaw run`, "
                  "or `systemctl --user restart nanoclaw` for the service)")
        link_first_chat(settings, [c.strip() for c in settings.channels.split(",") if c.strip()],
                        self.channel_step.bots, host_running)
        if any(not c.ok for c in problems):
            click.echo("Setup saved, but some checks fail (above). Details: nanoclaw doctor")
            return
        click.secho("NanoClaw is set up.", fg="green", bold=True)
        click.echo("  Start it:     nanoclaw run   (or as a service: nanoclaw service install)\n"
                   "  Talk to it:   nanoclaw chat\n"
                   "  Check later:  nanoclaw doctor")


def _rename_in_memory(settings: Settings, old_name: str) -> None:
    """Re-write the main group's memory for a new name, but only if nobody edited the template."""
    from nanoclaw import db
    from nanoclaw.host.folders import MAIN_MEMORY, Folders, group_owners
    from nanoclaw.safefs import UnsafePath

    if old_name == settings.assistant_name or not settings.db_path.is_file():
        return
    conn = db.connect(settings.db_path)
    folders = Folders.for_settings(settings, group_owners(conn, settings))
    try:
        if folders.read_memory("main") == MAIN_MEMORY.format(name=old_name):
            folders.write_memory("main", MAIN_MEMORY.format(name=settings.assistant_name))
    except (UnsafePath, KeyError, OSError):
        pass  # the agent made its memory something else: leave it to the owner
    finally:
        folders.close()
        conn.close()


@click.command()
@click.option("--non-interactive", is_flag=True,
              help="ask nothing: answers come from the options below, earlier answers and the environment "
                   f"({KEY_VAR}, channel tokens such as TELEGRAM_BOT_TOKEN)")
@click.option("--assistant-name",
              help="the assistant's name, also its trigger word @Name [default: earlier answer, else Andy]")
@click.option("--provider",
              help="model provider: claude, mock, … [default: claude when a key is given now; else the earlier "
                   "answer; else claude when a key is set, else mock]")
@click.option("--key-stdin", is_flag=True,
              help=f"read the Anthropic API key from standard input (default with --non-interactive: ${KEY_VAR}); "
                   "keys are never accepted as arguments, which other users can see in `ps`")
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="enable a channel (repeat for several) [default: earlier answer, else terminal]")
@click.option("--runtime", help="sandbox runtime [default: earlier answer, else bwrap]")
@click.option("--service/--no-service", "install", default=None,
              help="install (or not) the background service at the end [default: ask; no with --non-interactive]")
@home_option
@click.pass_context
def setup(ctx: click.Context, non_interactive: bool, **options: Any) -> None:
    """Set NanoClaw up: sandbox, model key, name, channels, service.

    Asks one step at a time, with defaults in [brackets] (earlier answers on a
    second run). Settings go to NANOCLAW_HOME/config.env, secrets to
    ~/.config/nanoclaw/credentials.env, both readable only by you.

    \b
    Examples:
      nanoclaw setup
      nanoclaw setup --non-interactive --assistant-name Bob --provider mock
      printf '%s' "$KEY" | nanoclaw setup --non-interactive --provider claude --key-stdin
    """
    Wizard(ctx, interactive=not non_interactive).run(**options)
