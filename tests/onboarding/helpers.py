"""What the onboarding flow tests share: waiting for a condition, the cards the owner sees in the web chat."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from nanoclaw.host.app import Host


async def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


def web_chat(host: Host) -> list[dict[str, Any]]:
    """The owner's web chat (the admin chat of a fresh install): messages and cards."""
    return host.channels["web"].store.history(None)  # type: ignore[attr-defined, no-any-return]


async def web_card(host: Host, title: str, count: int = 1) -> dict[str, Any]:
    """The `count`-th card titled `title` in the web chat, once it is there."""
    def found() -> list[dict[str, Any]]:
        return [m for m in web_chat(host) if m.get("title") == title]

    await wait_until(lambda: len(found()) >= count, what=f"{count} {title!r} card(s) in the web chat")
    return found()[count - 1]


async def web_says(host: Host, fragment: str) -> str:
    """The web chat message containing `fragment`, once it is there."""
    await wait_until(lambda: any(fragment in (m.get("text") or "") for m in web_chat(host)),
                     what=f"{fragment!r} in the web chat")
    return next(m["text"] for m in web_chat(host) if fragment in (m.get("text") or ""))
