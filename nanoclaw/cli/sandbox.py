"""`nanoclaw sandbox` — the sandbox runtimes: which work here, and the agent image of podman/docker."""

from __future__ import annotations

import click

from nanoclaw import registry
from nanoclaw.cli.options import home_option, load_settings
from nanoclaw.config import Settings
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
@click.option("--runtime", type=click.Choice(["podman", "docker", "apple", "gvisor"]),
              help="[default: the configured one if it uses images, else podman]")
@click.option("--base", help="base image with python3 ≥ 3.11 and its venv module "
                             "[default: docker.io/library/python:3.11-slim-bookworm]")
@click.option("--tag", help="[default: localhost/nanoclaw-agent:latest, what the runtime uses]")
@home_option
@click.pass_context
def build(ctx: click.Context, runtime: str | None, base: str | None, tag: str | None) -> None:
    """Build the agent image the podman, docker and gvisor runtimes start.

    NanoClaw and its dependencies become wheels on this machine first, so the
    image build needs no network beyond pulling BASE. Rebuild after upgrading
    NanoClaw.

    \b
    nanoclaw sandbox build
    nanoclaw sandbox build --runtime docker --base python:3.12-slim
    """
    from nanoclaw.sandbox.image import build_group_image, build_image, group_image
    from nanoclaw.sandbox.oci import DEFAULT_IMAGE

    settings = load_settings(ctx)
    runtime = runtime or (settings.runtime if settings.runtime in ("docker", "apple", "gvisor") else "podman")
    # gVisor starts podman's images; podman builds them (the build's own steps need no user-space kernel).
    cls = registry.load(registry.RUNTIMES, "podman" if runtime == "gvisor" else runtime)
    tag = tag or settings.sandbox_image or DEFAULT_IMAGE
    try:
        build_image(cls.cli(), tag, base=base, progress=click.echo)
        for group, packages in _groups_with_packages(settings):
            build_group_image(cls.cli(), tag, group_image(tag, group), packages, progress=click.echo)
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"image {tag} is ready; use it with NANOCLAW_RUNTIME={runtime}")


def _groups_with_packages(settings: Settings) -> list[tuple[str, list[str]]]:
    """Agent groups whose own image (their approved packages) must follow a rebuilt agent image."""
    if not settings.db_path.exists():
        return []
    from nanoclaw import db
    from nanoclaw.db import agent_groups, group_packages

    conn = db.connect(settings.db_path)
    try:
        found = [(g.id, group_packages.for_group(conn, g.id)) for g in agent_groups.list_all(conn)]
    finally:
        conn.close()
    return [(group, packages) for group, packages in found if packages]
