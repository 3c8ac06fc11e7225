"""What the owner should hear about without asking: a repaired folder, a full disk quota, background work.

Notices go to the admin chat (the gatekeeper's `admin_route`) and are logged as events; they never wait
on the caller, and the tasks that send them are kept referenced until done.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route
from nanoclaw.sandbox.quota import Usage

log = get_logger("nanoclaw.host.notices")


class OwnerNotices:
    def __init__(self, admin_route: Callable[[], Route | None], say: Callable[[Route, str], Awaitable[None]],
                 usage: Callable[[str], Usage | None]) -> None:
        self.admin_route = admin_route
        self.say = say
        self.usage = usage
        self._full: set[str] = set()  # groups the owner was told are full
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, text: str) -> None:
        """Tell the owner in the admin chat (and log it); a no-op outside the host's event loop."""
        log.warning("owner.notice", text=text)
        admin = self.admin_route()
        if admin is not None:
            try:
                self.background(self.say(admin, text))
            except RuntimeError:  # no running loop: logged is all we can do
                pass

    def background(self, work: Awaitable[object]) -> None:
        """Run `work` without waiting for it; kept referenced until done."""
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (a little) for notices still being sent: the host is stopping."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def check_quota(self, group_id: str) -> None:
        """Tell the owner once when a group has filled its disk quota (again after it freed some)."""
        usage = self.usage(group_id)
        if usage is None:
            return
        if usage.full and group_id not in self._full:
            self._full.add(group_id)
            log.warning("quota.full", group=group_id, size_mb=usage.size >> 20)
            self.notify(
                f"Agent group {group_id} has filled its disk quota ({_size(usage.size)}): its writes now fail "
                "with 'No space left on device' until it deletes files. The rest of this computer's disk is "
                "untouched. To give it more, set NANOCLAW_DISK_QUOTA_MB and restart NanoClaw.")
        elif not usage.full and usage.used < usage.size * 0.9:
            self._full.discard(group_id)


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MB"
