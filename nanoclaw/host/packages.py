"""`install_packages`: an agent asks, the owner approves in the admin chat, the group's image is rebuilt.

Only for image runtimes (podman, docker, apple): bubblewrap runs the host's own
system, to which an agent must never add anything. The build runs in the
background after the approval; the group's runners are asked to stop when idle
so its next start uses the new image.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any, Awaitable, Callable

from nanoclaw.db import approvals, group_packages
from nanoclaw.db.approvals import Approval
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused, NanoClawError
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route
from nanoclaw.sandbox.base import Runtime
from nanoclaw.sandbox.image import build_group_image, group_image
from nanoclaw.sandbox.oci import OciRuntime

log = get_logger("nanoclaw.host.packages")

PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,62}")
MAX_PACKAGES = 20
TTL = 24 * 3600

Card = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[None]]
Say = Callable[[Route, str], Awaitable[None]]


class PackageRequests:
    def __init__(self, conn: sqlite3.Connection, runtime: Runtime, send_card: Card, say: Say,
                 admin_route: Callable[[], Route | None], restart_group: Callable[[str], None]) -> None:
        self.conn = conn
        self.runtime = runtime
        self.send_card = send_card
        self.say = say
        self.admin_route = admin_route
        self.restart_group = restart_group
        self.builds: set[asyncio.Task[None]] = set()

    def image_for(self, group_id: str) -> str | None:
        """The group's own image when the owner approved packages for it (and the runtime uses images)."""
        if not isinstance(self.runtime, OciRuntime) or not group_packages.for_group(self.conn, group_id):
            return None
        return group_image(self.runtime.image, group_id)

    async def request(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        """The agent's tool call: ask the owner; returns at once."""
        packages = payload.get("packages")
        if not isinstance(packages, list) or not packages or len(packages) > MAX_PACKAGES:
            raise DestinationRefused(f"give 1 to {MAX_PACKAGES} Debian package names")
        bad = [p for p in packages if not isinstance(p, str) or not PACKAGE.fullmatch(p)]
        if bad:
            raise DestinationRefused(f"not Debian package names: {', '.join(map(str, bad))[:200]}")
        if not isinstance(self.runtime, OciRuntime):
            raise DestinationRefused(
                f"this host runs agents with {self.runtime.name}, which has no image to add packages to; the owner "
                "can switch to podman or docker (see docs/install.md)")
        group = session.agent_group_id
        wanted = sorted(set(packages) - set(group_packages.for_group(self.conn, group)))
        if not wanted:
            return f"Already installed: {', '.join(sorted(set(packages)))}."
        admin = self.admin_route()
        if admin is None:
            raise DestinationRefused("there is no admin chat to ask the owner in")
        reason = str(payload.get("reason") or "")[:500]
        approval = approvals.create(self.conn, "install_packages", group, {"packages": wanted, "reason": reason}, TTL)
        text = (f"Agent group {group} asks to install: {', '.join(wanted)}"
                + (f"\nWhy: {reason}" if reason else "")
                + f"\n(/approve {approval.id} · /deny {approval.id})")
        await self.send_card(admin, "Install packages", text, ("Approve", "Deny"), approval.id)
        log.info("packages.requested", approval=approval.id, group=group, count=len(wanted))
        return (f"Asked the owner to approve {', '.join(wanted)} ({approval.id}). If they do, the packages are "
                "there from your next start; nothing changes before.")

    async def decide(self, approval: Approval, approve: bool) -> str:
        group, packages = approval.subject, list(approval.payload.get("packages", []))
        if not approve:
            log.info("packages.denied", approval=approval.id, group=group)
            return f"Denied: {group} does not get {', '.join(packages)} ({approval.id})."
        task = asyncio.create_task(self._build(approval.id, group, packages))
        self.builds.add(task)
        task.add_done_callback(self.builds.discard)
        return f"Approved ({approval.id}); building {group}'s image with {', '.join(packages)}…"

    async def _build(self, approval_id: str, group: str, packages: list[str]) -> None:
        assert isinstance(self.runtime, OciRuntime)
        everything = sorted(set(group_packages.for_group(self.conn, group)) | set(packages))
        tag = group_image(self.runtime.image, group)
        try:
            await asyncio.to_thread(build_group_image, self.runtime.cli(), self.runtime.image, tag, everything,
                                    lambda line: None)
        except NanoClawError as exc:
            log.error("packages.build_failed", approval=approval_id, group=group, error=str(exc)[-300:])
            await self._tell(f"Building {group}'s image failed ({approval_id}); nothing changed:\n{str(exc)[-500:]}")
            return
        group_packages.add(self.conn, group, packages)
        self.restart_group(group)
        log.info("packages.installed", approval=approval_id, group=group, image=tag)
        await self._tell(f"{group}'s image now has {', '.join(everything)}; its next start uses it ({approval_id}).")

    async def _tell(self, text: str) -> None:
        admin = self.admin_route()
        if admin is not None:
            await self.say(admin, text)
