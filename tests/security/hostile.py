"""The arena of the hostile-agent battery: a real host, a real sandbox, an agent with a shell, a canary.

The agent acts as a prompt-injected agent would, through its own shell tool
(the mock provider's `[mock:sh=…]`): it plants links, FIFOs, huge files and odd
names in every folder it can write, then makes the host touch them. The canary
is a root-only folder outside every tree; after each attack its names, modes,
owners and contents must be exactly as before.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups
from nanoclaw.host.app import Host
from tests.conftest import make_settings, wire
from tests.fakes.channel import FakeChannel, Sent

# Small limits (every bomb hits its wall fast) and a small disk quota per group.
HOSTILE_LIMITS = dict(sandbox_memory_mb=512, sandbox_pids=128, sandbox_cpu_seconds=20, sandbox_file_mb=16,
                      disk_quota_mb=48)
GROUP_CHAT = "family-chat"  # wired to the non-admin group `family`
ADMIN_CHAT = "admin-chat"  # wired to `main` (admin), a group chat
OWNER_DM = "owner-dm"  # the owner's DM with `main`: where the host tells the owner things


def make_canary(root: Path) -> Path:
    """A root-only folder with a file and a sub-folder: what a planted link points at."""
    canary = root / "canary"
    canary.mkdir(mode=0o700)
    (canary / "existing").write_text("original, root's own\n")
    (canary / "existing").chmod(0o600)
    (canary / "dir").mkdir(mode=0o700)
    (canary / "dir" / "inner").write_text("inner\n")
    (canary / "dir" / "inner").chmod(0o600)
    return canary


def snapshot(canary: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under the canary: kind, mode, owner, size and content hash."""
    seen: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(canary, followlinks=False):
        for name in [*dirnames, *filenames, ""]:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            seen[str(path.relative_to(canary.parent))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, digest)
    return seen


def links(canary: Path) -> dict[str, str]:
    """What the agent points its links at: a file, a folder, and names that do not exist yet (dangling)."""
    return {"file": str(canary / "existing"), "dir": str(canary / "dir"), "dangling": str(canary / "created-by-host"),
            "dangling-in-dir": str(canary / "dir" / "created-by-host")}


def plant(path: str, kind: str, canary: Path) -> str:
    """A shell command that replaces `path` (inside the sandbox) by something hostile."""
    target = links(canary)
    commands = {
        "file-link": f"ln -s {target['file']} {path}",
        "dir-link": f"ln -s {target['dir']} {path}",
        "dangling-link": f"ln -s {target['dangling']} {path}",
        "fifo": f"mkfifo {path}",
        "huge-sparse": f"truncate -s 15M {path}",
        "folder": f"mkdir -p {path}/x",
    }
    return f"rm -rf {path}; {commands[kind]}"


def python(code: str) -> str:
    """A shell command running `code` with a Python of the sandbox (brackets travel base64-encoded)."""
    encoded = base64.b64encode(code.encode()).decode()
    return ("PY=$(command -v /opt/nanoclaw/bin/python || command -v python3); "
            f"echo {encoded} | base64 -d > /tmp/p.py; $PY /tmp/p.py")


@dataclass
class Arena:
    settings: Settings
    canary: Path
    host: Host
    before: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    adoptions: int = 0  # pooled sandboxes adopted by the arena's sessions, over host restarts

    @property
    def fifos_reach_the_host(self) -> bool:
        """gVisor keeps a FIFO made inside in its own kernel: the host's folder never gets one."""
        return self.settings.runtime != "gvisor"

    @classmethod
    async def open(cls, tmp_path: Path, runtime: str, image: str | None, **settings: object) -> Arena:
        """A host on `runtime` (`image`: the agent image of podman and gvisor; `settings` such as pool_size)."""
        extra: dict[str, object] = dict(HOSTILE_LIMITS, runtime=runtime, idle_timeout=60.0, **settings)
        if image:
            extra["sandbox_image"] = image
        settings = make_settings(tmp_path / "home", **extra)
        canary = make_canary(tmp_path)
        arena = cls(settings, canary, await cls._start(settings, first=True))
        arena.before = snapshot(canary)
        return arena

    @staticmethod
    async def _start(settings: Settings, first: bool = False) -> Host:
        host = Host(settings, channels=[FakeChannel])
        if first:
            agent_groups.create(host.conn, "family", "Family")
            wire(host, GROUP_CHAT, "family", trigger="always")
            wire(host, ADMIN_CHAT, "main", trigger="always")
            wire(host, OWNER_DM, "main", is_dm=True, trigger="dm")
        await host.start()
        return host

    @property
    def channel(self) -> FakeChannel:
        ch = self.host.channels["fake"]
        assert isinstance(ch, FakeChannel)
        return ch

    async def say(self, text: str, chat: str = GROUP_CHAT, timeout: float = 60, **kwargs: Any) -> Sent:
        """A person writes in `chat`; returns the next message the host sends there."""
        before = len(self.to(chat))
        await self._pool_ready(chat)
        await self.channel.say(text, chat=chat, is_dm=chat == OWNER_DM, **kwargs)
        return (await self.wait_for(chat, before + 1, timeout))[-1]

    async def agent(self, command: str, chat: str = GROUP_CHAT) -> str:
        """The agent runs `command` in its sandbox with its shell tool; returns the tool's output."""
        assert "[" not in command and "]" not in command, "use python() for brackets"
        return (await self.say(f"[mock:sh={command}]", chat)).text

    @property
    def pooled(self) -> bool:
        return self.settings.pool_size > 0

    async def _pool_ready(self, chat: str, timeout: float = 60) -> None:
        """With a pool: a chat whose session has no runner gets a pooled sandbox, so wait for a ready one."""
        if not self.pooled:
            return
        group = "family" if chat == GROUP_CHAT else "main"
        live = {self.host.sessions.get(s).agent_group_id for s in self.host.supervisor.live}
        if group in live:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(s.key == (group, "fake") and s.ready for s in self.host.pool.slots.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no pooled sandbox for {group} got ready: {self.host.status()['pool']}")
            await asyncio.sleep(0.05)

    def to(self, chat: str) -> list[Sent]:
        return [s for s in self.channel.sent if s.route.platform_id == chat]

    async def wait_for(self, chat: str, count: int, timeout: float = 60) -> list[Sent]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.to(chat)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{chat} got {len(self.to(chat))} messages, waited for {count}: "
                                     f"{[s.text[:200] for s in self.to(chat)]}")
            await asyncio.sleep(0.05)
        return self.to(chat)

    async def owner_told(self, *words: str, timeout: float = 30) -> str:
        """The message the owner got in their DM that says all of `words`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for sent in self.to(OWNER_DM):
                if all(w.lower() in sent.text.lower() for w in words):
                    return sent.text
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the owner was not told {words}: {[s.text[:200] for s in self.to(OWNER_DM)]}")
            await asyncio.sleep(0.05)

    async def restart_runners(self) -> None:
        """The agent's runner exits (as it can make it do); the next message starts a fresh one."""
        for session_id in list(self.host.supervisor.live):
            runner = self.host.supervisor.live.get(session_id)
            self.host.supervisor.kill(session_id)
            if runner is not None and runner.watcher is not None:
                await asyncio.wait_for(asyncio.shield(runner.watcher), 30)

    async def restart_host(self) -> None:
        self.adoptions += self.host.pool.adoptions
        await self.host.stop()
        sent = self.channel.sent  # the platform keeps what the host sent before it restarted
        self.host = await self._start(self.settings)
        self.channel.sent[:0] = sent

    async def still_answers(self, chat: str = GROUP_CHAT) -> None:
        reply = await self.say("are you still there?", chat)
        assert "are you still there?" in reply.text, reply.text

    def canary_untouched(self) -> None:
        after = snapshot(self.canary)
        assert after == self.before, {k: (self.before.get(k), after.get(k))
                                      for k in set(after) | set(self.before) if after.get(k) != self.before.get(k)}

    async def close(self) -> None:
        self.adoptions += self.host.pool.adoptions
        await self.host.stop()
