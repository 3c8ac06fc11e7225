"""`nanoclaw sandbox` — the sandbox runtimes: which work here, and the agent image of podman/docker."""

from __future__ import annotations

import click

from nanoclaw import registry
from nanoclaw.cli_options import home_option, load_settings
from nanoclaw.errors import SandboxUnavailable
from nanoclaw.sandbox import detect


@click.group()
def sandbox() -> None:
    """Sandbox runtimes: list what works here, build the podman/docker image."""


@sandbox.command("list")
@home_option
@click.pass_context
def list_runtimes(ctx: click.Context) -> None:
    """Each installed runtime, whether it works here, and which one the host uses."""
    settings = load_settings(ctx)
    chosen = settings.runtime or detect.detect()
    for name in registry.names(registry.RUNTIMES):
        result = detect.check(name)
        mark = "*" if name == chosen else " "
        click.echo(f"{mark} {name:<7} {'ok  ' if result.ok else 'FAIL'} {result.detail}")
        if not result.ok and result.fix:
            click.echo(f"            fix: {result.fix}")


@sandbox.command()
@click.option("--runtime", type=click.Choice(["podman", "docker"]), help="[default: podman if installed]")
@click.option("--base", help="base image with python3 ≥ 3.11 and its venv module "
                             "[default: docker.io/library/python:3.11-slim-bookworm]")
@click.option("--tag", help="[default: localhost/nanoclaw-agent:latest, what the runtime uses]")
@home_option
@click.pass_context
def build(ctx: click.Context, runtime: str | None, base: str | None, tag: str | None) -> None:
    """Build the agent image the podman and docker runtimes start.

    NanoClaw and its dependencies become wheels on this machine first, so the
    image build needs no network beyond pulling BASE. Rebuild after upgrading
    NanoClaw.

    \b
    nanoclaw sandbox build
    nanoclaw sandbox build --runtime docker --base python:3.12-slim
    """
    from nanoclaw.sandbox.image import build_image
    from nanoclaw.sandbox.oci import DEFAULT_IMAGE, DockerRuntime, PodmanRuntime

    settings = load_settings(ctx)
    runtime = runtime or ("docker" if settings.runtime == "docker" else "podman")
    cls = PodmanRuntime if runtime == "podman" else DockerRuntime
    tag = tag or settings.sandbox_image or DEFAULT_IMAGE
    try:
        build_image(cls.cli(), tag, base=base, progress=click.echo)
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"image {tag} is ready; use it with NANOCLAW_RUNTIME={runtime}")
