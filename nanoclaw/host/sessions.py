"""Session folders on disk and the host's open end of each (DESIGN §3)."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, destinations, group_mcp_servers, group_mounts, sessions
from nanoclaw.db.agent_groups import AgentGroup
from nanoclaw.db.sessions import Session
from nanoclaw.errors import ConfigError, NanoClawError
from nanoclaw.host.folders import Folders
from nanoclaw.logs import get_logger
from nanoclaw.protocol.folder import (
    SANDBOX_AGENT,
    SANDBOX_CA_BUNDLE,
    SANDBOX_CA_CERT,
    SANDBOX_GLOBAL,
    SANDBOX_LINK_SOCKET,
    SANDBOX_PROXY_SOCKET,
    SANDBOX_WORKSPACE,
    SessionFolder,
)
from nanoclaw.protocol.host_end import HOST_FILES, OUTBOUND_FILES, HostEnd
from nanoclaw.protocol.messages import Route
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.sandbox.base import Limits, Mount, SandboxSpec
from nanoclaw.safefs import Tree, UnsafePath
from nanoclaw.sandbox import attach
from nanoclaw.sandbox.attach import SlotPoint
from nanoclaw.sandbox.identity import SANDBOX_UID
from nanoclaw.sandbox.mounts import MOUNT_ROOT, Allowlist, MountRefused

log = get_logger("nanoclaw.host.sessions")
CLAUDE_CONFIG_DIR = "/home/agent/.claude"


class SessionManager:
    def __init__(self, settings: Settings, conn: sqlite3.Connection, folders: Folders) -> None:
        self.settings = settings
        self.conn = conn
        self.folders = folders
        self.notice: Callable[[str], None] = lambda text: None  # tells the owner (the admin chat)
        self._ends: dict[str, HostEnd] = {}
        self.formatting: dict[str, str] = {}  # channel type → formatting rules for the system prompt
        self.proxy_socket: Callable[[str, str], Path | None] = lambda _session, _group: None
        self.proxy_token: Callable[[str], str | None] = lambda _session: None
        self.link_socket: Callable[[str], Path | None] = lambda _session: None  # protocol/link.py, where used
        self.image_for: Callable[[str], str | None] = lambda _group: None  # the group's own image, if any
        # The vault CA's certificate, and the bundle with it: files made when the first sandbox needs them.
        self.ca_files: Callable[[], tuple[Path, Path]] | None = None
        self._sessions: dict[str, Session] = {}
        self._blanks: dict[str, list[tuple[str, HostEnd]]] = {}  # group → empty session folders made ahead
        # A pooled sandbox's blank folder for a new session (host/pool.py), claimed for it, if one is ready.
        self.slot_blank: Callable[[Session], tuple[str, HostEnd] | None] = lambda _session: None
        self._held: set[str] = set()  # names of blank folders pooled sandboxes hold (seen by a sandbox)
        self._closed = False
        self.quarantined: set[str] = set()  # sessions set aside since the person last heard about it

    def folder(self, session: Session) -> SessionFolder:
        return SessionFolder(self.folders.session_path(session.agent_group_id, session.id))

    def group_folder(self, agent_group_id: str) -> Path:
        return self.folders.group_path(agent_group_id)

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = sessions.get(self.conn, session_id)
            if session is None:
                raise KeyError(session_id)
            self._sessions[session_id] = session
        return session

    def end(self, session_id: str) -> HostEnd:
        """The host's end of the session, opened once (before any runner can touch the folder).

        A folder that cannot be opened (corrupt database, files replaced by links)
        is set aside and the session starts afresh: the assistant keeps working.
        """
        end = self._ends.get(session_id)
        if end is None:
            if self._closed:
                raise NanoClawError("the host is stopping: session folders are closed")
            session = self.get(session_id)
            folder = self.folder(session)
            owner = self.folders.owner_of(session.agent_group_id)
            self.folders.mount(session.agent_group_id)
            try:
                end = self._take_blank(session) or HostEnd(folder, doorbell=self.settings.doorbell, owner=owner)
            except (sqlite3.DatabaseError, PermissionError, OSError, UnsafePath) as exc:
                self._set_aside(session, f"{type(exc).__name__}: {exc}")
                end = HostEnd(folder, doorbell=self.settings.doorbell, owner=owner)
            self._ends[session_id] = end
        return end

    def reset(self, session_id: str, why: str) -> tuple[HostEnd, Route | None]:
        """Set a session's folder aside (its files are not what they should be) and start it afresh.

        Returns the new end and the chat the conversation was in (from the host's own
        inbound.db), so the person can be told at once; the owner is told here.
        """
        route = None
        end = self._ends.pop(session_id, None)
        if end is not None:
            try:
                route = end.routing()
            except sqlite3.DatabaseError:
                pass
            end.close()
        aside = self._set_aside(self.get(session_id), why)
        self.quarantined.discard(session_id)  # the caller tells the person now
        self.notice(f"The files of conversation {session_id} were damaged or tampered with ({why}); they were "
                    f"set aside as {aside} and the conversation starts afresh.")
        new = self.end(session_id)
        if route is not None:
            new.set_routing(route)
        return new, route

    def _set_aside(self, session: Session, why: str) -> str | None:
        with self.folders.sessions_of(session.agent_group_id) as parent:
            aside = parent.set_aside(session.id, f"quarantined-{int(time.time())}")
        log.error("session.quarantined", session=session.id, error=why, moved_to=aside)
        self.quarantined.add(session.id)
        return aside

    BLANK_PREFIX = ".blank-"
    HELD_PREFIX = ".held-"

    def make_blank(self, group_id: str) -> None:
        """An empty session folder, opened, for the group's next new session (databases take a few fsyncs).

        Blank folders an earlier host left are taken first: no sandbox ever saw them. Safe to run in a
        thread (the host's end of it is used by the event loop only once it is taken).
        """
        with self.folders.sessions_of(group_id) as parent:
            entries = parent.list()
            names = [e.name for e in entries if e.name.startswith(self.BLANK_PREFIX) and e.kind == "dir"]
            for e in entries:  # a pooled sandbox saw these: an earlier host's are removed, never reused
                if e.name.startswith(self.HELD_PREFIX) and e.name not in self._held:
                    parent.remove(e.name)
        blanks = self._blanks.setdefault(group_id, [])
        taken = {name for name, _ in blanks}
        fresh = [n for n in names if n not in taken][:1] or ([] if blanks else [f"{self.BLANK_PREFIX}{os.urandom(6).hex()}"])
        for name in fresh:
            folder = SessionFolder(self.folders.session_path(group_id, name))
            blanks.append((name, HostEnd(folder, doorbell=self.settings.doorbell, owner=self.folders.owner_of(group_id))))

    def has_blank(self, group_id: str) -> bool:
        return bool(self._blanks.get(group_id))

    def _take_blank(self, session: Session) -> HostEnd | None:
        """A new session's folder: a blank one renamed into place, already open (None: make one now).

        A blank a ready pooled sandbox of the session's group and chat kind holds comes first: the runner
        there has it open already.
        """
        with self.folders.sessions_of(session.agent_group_id) as parent:
            if parent.kind(session.id) is not None:
                return None
            blanks = self._blanks.get(session.agent_group_id)
            taken = self.slot_blank(session) or (blanks.pop() if blanks else None)
            if taken is None:
                return None
            name, end = taken
            try:
                parent.rename(name, session.id)
            except (OSError, UnsafePath) as exc:
                log.warning("session.blank_unusable", group=session.agent_group_id, error=str(exc))
                if name not in self._held:
                    end.close()
                return None
        self._held.discard(name)
        end.moved_to(self.folder(session))
        return end

    def hold_blank(self, group_id: str) -> tuple[str, HostEnd] | None:
        """A blank folder of the group for a pooled sandbox to hold (None: none made yet). Renamed first, so
        that once a sandbox saw it, it is never taken as a blank again (a new session takes it by its name)."""
        blanks = self._blanks.get(group_id)
        if not blanks:
            return None
        name, end = blanks.pop()
        held = f"{self.HELD_PREFIX}{os.urandom(6).hex()}"
        with self.folders.sessions_of(group_id) as parent:
            parent.rename(name, held)
        self._held.add(held)
        end.moved_to(SessionFolder(self.folders.session_path(group_id, held)))
        return held, end

    def drop_held(self, group_id: str, name: str, end: HostEnd) -> None:
        """A held blank no session took (its sandbox ended): closed and removed (links inside never followed)."""
        if name not in self._held:
            return  # a session took it: its folder and its end now
        self._held.discard(name)
        end.close()
        try:
            with self.folders.sessions_of(group_id) as parent:
                parent.remove(name)
        except (OSError, UnsafePath) as exc:
            log.warning("session.held_blank_left", group=group_id, name=name, error=str(exc))

    def has_folder(self, session: Session) -> bool:
        """Whether the session's folder holds an inbound.db (links are not looked through)."""
        self.folders.mount(session.agent_group_id)
        try:
            with self.folders.sessions_of(session.agent_group_id) as parent:
                return parent.kind(f"{session.id}/inbound.db") is not None
        except UnsafePath:
            return False

    def open_ends(self) -> dict[str, HostEnd]:
        return dict(self._ends)

    def close(self) -> None:
        self._closed = True
        for end in [*self._ends.values(), *(e for blanks in self._blanks.values() for _, e in blanks)]:
            end.close()
        self._ends.clear()
        self._blanks.clear()
        self.folders.close()

    def resolve(
        self, agent_group_id: str, messaging_group_id: int | None, thread_id: str | None, mode: str
    ) -> Session:
        if mode == "agent-shared":
            messaging_group_id, thread_id = None, None
        elif mode == "shared":
            thread_id = None
        session, created = sessions.get_or_create(self.conn, agent_group_id, messaging_group_id, thread_id, mode)
        self._sessions[session.id] = session
        if created:
            self.end(session.id).set_destinations(self._destinations(agent_group_id))
        return session

    def _destinations(self, agent_group_id: str) -> dict[str, Route]:
        """The runner's copy of its destinations, for list_destinations (agents as channel 'agent')."""
        out = {}
        for name, dest in destinations.for_agent_group(self.conn, agent_group_id).items():
            out[name] = dest.route or Route("agent", dest.target_agent_group_id or "")
        return out

    def refresh_destinations(self, agent_group_id: str) -> None:
        for session_id, end in self._ends.items():
            if self.get(session_id).agent_group_id == agent_group_id:
                end.set_destinations(self._destinations(agent_group_id))

    def _empty_file(self) -> Path:
        """An empty read-only file of the host's own (state/ is never mounted), bound over what a sandbox must
        not reach."""
        path = self.settings.state_dir / "empty"
        if not path.is_file() or path.stat().st_size:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            path.chmod(0o444)
        return path

    def _extra_mounts(self, group_id: str) -> list[Mount]:
        """The owner's folders granted to the group, checked again now: the allow-list or a link may have changed."""
        granted = group_mounts.for_group(self.conn, group_id)
        if not granted:
            return []
        try:
            allowlist = Allowlist.for_settings(self.settings)
        except ConfigError as exc:
            log.error("mounts.allowlist_invalid", error=str(exc))
            return []
        mounts = []
        for m in granted:
            try:
                path = allowlist.check(m.host_path, writable=m.writable)
            except MountRefused as exc:
                log.warning("mounts.refused", group=group_id, name=m.name, reason=str(exc))
                continue
            mounts.append(Mount(path, f"{MOUNT_ROOT}/{m.name}", writable=m.writable))
        return mounts

    def sandbox_spec(self, session: Session, label: str) -> SandboxSpec:
        """Mounts and environment of DESIGN §5 for one runner."""
        group = self._group(session.agent_group_id)
        end = self.end(session.id)  # the folder exists, checked, before anything of it is mounted
        # Ownership first: what a restore or an older version left as root's becomes the group's before
        # the host writes there as the group's uid.
        self.folders.hand_over(group.id, end.tree, is_admin=group.is_admin, keep=frozenset(HOST_FILES))
        self._group_ready(group)
        mounts = [Mount(self.folder(session).root, SANDBOX_WORKSPACE, writable=True)]
        # The host's files in the session folder are read-only inside, and being
        # mount points they cannot be replaced by links.
        for name in HOST_FILES:
            if end.tree.is_file(name):
                mounts.append(Mount(self.folder(session).root / name, f"{SANDBOX_WORKSPACE}/{name}"))
        mounts += self._group_mounts(group)
        mounts += self._extra_mounts(group.id)
        config = self.runner_config(group, self._channel_type(session))
        link = self.link_socket(session.id)  # runtimes whose sandboxes do not share file locks (never pooled)
        if link is not None:
            uid = self.folders.owner_of(group.id)
            if uid is not None:
                os.chown(link, uid, uid, follow_symlinks=False)
            mounts.append(Mount(link, SANDBOX_LINK_SOCKET, writable=True))
            # Its runner reaches outbound.db only through the link: the files are covered by an empty read-only
            # one, so nothing in the sandbox writes beside the host's connection or resets the -shm the host has
            # mapped (a truncated -shm is a SIGBUS in the host).
            for name in OUTBOUND_FILES:
                if end.tree.is_file(name):
                    mounts.append(Mount(self._empty_file(), f"{SANDBOX_WORKSPACE}/{name}"))
            config = replace(config, link=SANDBOX_LINK_SOCKET)
        return self._spec(group, label, session.id, config, mounts, self.proxy_socket(session.id, group.id),
                          self.proxy_token(session.id))

    def slot_spec(self, group_id: str, channel_type: str, label: str, name: str, point: Path,
                  proxy: Path | None, token: str | None) -> SandboxSpec:
        """A pooled sandbox of a group for chats of one kind: a session's sandbox without the session.

        `/workspace` is the slot's empty mount point (a held blank folder comes once it is ready, a session's at
        adoption: attach_folder); the group folder and global memory are there already, for what the runner
        reads while it warms up.
        """
        group = self._group(group_id)
        self.folders.hand_over(group.id, None, is_admin=group.is_admin)
        self._group_ready(group)
        for sub in ("agent", "global"):  # mount points in the read-only slot folder (the host's own)
            (point / sub).mkdir(exist_ok=True)
        mounts = [Mount(point, SANDBOX_WORKSPACE, writable=False), *self._group_mounts(group)]
        config = replace(self.runner_config(group, channel_type), pooled=True)
        return replace(self._spec(group, label, name, config, mounts, proxy, token), pooled=True)

    def attach_session(self, session: Session, point: SlotPoint) -> None:
        """Adoption: the session folder and what is mounted inside it, onto a waiting sandbox's `/workspace`."""
        self.attach_folder(session.agent_group_id, self.end(session.id), point)

    def attach_folder(self, group_id: str, end: HostEnd, point: SlotPoint) -> None:
        """A session folder (or a held blank one) and what is mounted inside it, onto a pooled sandbox's
        `/workspace`: the same mounts as sandbox_spec's below /workspace, each cloned from a descriptor and
        attached to a name that is not followed if it is a link; read-only ones are read-only before they are
        attached."""
        group = self._group(group_id)
        self.folders.hand_over(group.id, end.tree, is_admin=group.is_admin, keep=frozenset(HOST_FILES))
        extras = self._extra_mounts(group.id)
        for name in ("agent", "global", *(["extra"] if extras else [])):
            end.tree.mkdir(name)
        for m in extras:
            end.tree.mkdir(m.target.removeprefix(SANDBOX_WORKSPACE + "/"))
        attach.attach_at(attach.clone(end.tree.fd), point.path)
        with Tree(point.open(), point.path, None) as workspace:
            for name in HOST_FILES:
                if end.tree.is_file(name):
                    attach.attach(attach.clone(end.tree.fd, name, readonly=True), workspace.fd, name)
            with self.folders.group(group.id) as tree:
                attach.attach(attach.clone(tree.fd), workspace.fd, "agent")
            with self.folders.global_tree() as tree:
                attach.attach(attach.clone(tree.fd, readonly=not group.is_admin), workspace.fd, "global")
            if extras:
                with workspace.subtree("extra") as extra:
                    for m in extras:
                        source = os.open(m.source, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                        attach.attach(attach.clone(source, readonly=not m.writable, close_source=True), extra.fd,
                                      m.target.rsplit("/", 1)[1])

    def _group(self, group_id: str) -> AgentGroup:
        group = agent_groups.get(self.conn, group_id)
        if group is None:
            raise KeyError(f"agent group {group_id} is gone")
        return group

    def group_ready(self, group_id: str) -> None:
        """What every runner start does for its group first (memory repaired, skills copied afresh): a pooled
        sandbox's adoption too, since the agent may have changed them after the sandbox started."""
        self._group_ready(self._group(group_id))

    def _group_ready(self, group: AgentGroup) -> None:
        self.folders.ensure_group(group.id, is_admin=group.is_admin)
        self.folders.copy_skills(group.id)
        for text in self.folders.notices:
            self.notice(text)
        self.folders.notices.clear()

    def _group_mounts(self, group: AgentGroup) -> list[Mount]:
        return [
            Mount(self.folders.group_path(group.id), SANDBOX_AGENT, writable=True),
            Mount(self.folders.group_path("global"), SANDBOX_GLOBAL, writable=group.is_admin),
            Mount(self.folders.claude_path(group.id), CLAUDE_CONFIG_DIR, writable=True),
        ]

    def runner_config(self, group: AgentGroup, channel_type: str) -> RunnerConfig:
        """Everything the runner is told depends on its group and the kind of chat only (what pools rely on)."""
        return RunnerConfig(
            workspace=SANDBOX_WORKSPACE,
            provider=group.provider or self.settings.provider or "mock",
            model=group.model or self.settings.model,
            assistant_name=self.settings.assistant_name,
            channel_type=channel_type,
            doorbell=self.settings.doorbell,
            poll_interval=self.settings.runner_poll_interval,
            idle_timeout=self.settings.idle_timeout,
            heartbeat_interval=self.settings.heartbeat_interval,
            is_admin=group.is_admin,
            max_turns=self.settings.max_agent_turns,
            model_max_retries=self.settings.model_max_retries,
            context_window=self.settings.context_window,
            formatting=self.formatting.get(channel_type, ""),
            mcp_servers=group_mcp_servers.runner_json(self.conn, group.id),
        )

    def _spec(self, group: AgentGroup, label: str, name: str, config: RunnerConfig, mounts: list[Mount],
              proxy: Path | None, token: str | None) -> SandboxSpec:
        uid = self.folders.owner_of(group.id)
        if proxy is not None:
            if uid is not None:  # the sandbox user connects to it
                os.chown(proxy, uid, uid, follow_symlinks=False)
            mounts.append(Mount(proxy, SANDBOX_PROXY_SOCKET, writable=True))
        trust: dict[str, str] = {}
        if self.ca_files is not None:  # HTTPS the vault intercepts is signed by its CA: trust it, with the usual roots
            ca_cert, ca_bundle = self.ca_files()
            mounts += [Mount(ca_cert, SANDBOX_CA_CERT), Mount(ca_bundle, SANDBOX_CA_BUNDLE)]
            trust = {"SSL_CERT_FILE": SANDBOX_CA_BUNDLE, "REQUESTS_CA_BUNDLE": SANDBOX_CA_BUNDLE,
                     "CURL_CA_BUNDLE": SANDBOX_CA_BUNDLE, "NODE_EXTRA_CA_CERTS": SANDBOX_CA_CERT}
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/home/agent",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "CLAUDE_CONFIG_DIR": CLAUDE_CONFIG_DIR,
            **trust,
            **({"NANOCLAW_PROXY_TOKEN": token} if token else {}),
            **config.to_env(),
        }
        return SandboxSpec(
            label=label,
            name=name,
            argv=[sys.executable, "-I", "-m", "nanoclaw.runner"],
            env=env,
            mounts=mounts,
            cwd=SANDBOX_AGENT,
            image=self.image_for(group.id),
            limits=Limits(
                memory_mb=self.settings.sandbox_memory_mb, pids=self.settings.sandbox_pids,
                cpus=self.settings.sandbox_cpus, cpu_seconds=self.settings.sandbox_cpu_seconds,
                file_mb=self.settings.sandbox_file_mb,
            ),
            uid=uid if uid is not None else SANDBOX_UID,
        )

    def provider_of(self, group_id: str) -> str:
        group = agent_groups.get(self.conn, group_id)
        return (group.provider if group else "") or self.settings.provider or "mock"

    def channel_type(self, session_id: str) -> str:
        return self._channel_type(self.get(session_id))

    def _channel_type(self, session: Session) -> str:
        if session.messaging_group_id is None:
            return ""
        row = self.conn.execute(
            "SELECT channel_type FROM messaging_groups WHERE id = ?", (session.messaging_group_id,)
        ).fetchone()
        return row[0] if row else ""
