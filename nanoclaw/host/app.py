"""The one object that wires the host together (STYLE §4): `Host(settings)`.

Tests build a whole host in a temp dir with the same call, passing extra
channels or another runtime.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

from nanoclaw import db, registry
from nanoclaw.channels.base import (
    Channel, Health, InboundEvent, IngestResult, LocalHandler, OutgoingMessage, WebhookHandler,
)
from nanoclaw.config import Settings
from nanoclaw.channels.web import WebChannel
from nanoclaw.db import agent_groups, messaging_groups, users
from nanoclaw.db import approvals as approvals_db
from nanoclaw.db import sessions as session_rows
from nanoclaw.errors import ConfigError
from nanoclaw.host import bootstrap
from nanoclaw.host.api import ApiConnection, LocalApi
from nanoclaw.host.cards import EXPIRED, CardBoard
from nanoclaw.host.actions import Actions
from nanoclaw.host.admin import ADMIN_ACTIONS, AdminActions
from nanoclaw.host.agents import AgentRelay, AgentRequests
from nanoclaw.host.channel_start import ChannelStarter
from nanoclaw.host.commands import HostCommands
from nanoclaw.host.dashboard import Dashboard
from nanoclaw.host.dashboard_levers import DashboardLevers
from nanoclaw.host.dashboard_people import PeoplePanel
from nanoclaw.host.delivery import Delivery
from nanoclaw.host.diagnostics import DIAGNOSTIC_ACTIONS, Diagnostics
from nanoclaw.host.gatekeeper import Gatekeeper
from nanoclaw.host.egress_approvals import EgressApprovals
from nanoclaw.host.folders import Folders, group_owners
from nanoclaw.host.mcp_servers import McpServerRequests
from nanoclaw.host.newcomers import NewChats
from nanoclaw.host.notices import OwnerNotices
from nanoclaw.host.onboarding_ops import OnboardingOps
from nanoclaw.host.owners import Owners
from nanoclaw.host.pairing import Pairing
from nanoclaw.host.packages import PackageRequests
from nanoclaw.host.pool import Pool, ProxySlots
from nanoclaw.host.questions import QuestionDesk
from nanoclaw.host.router import Router
from nanoclaw.host.scheduler import TASK_ACTIONS, Clock, Scheduler
from nanoclaw.host.task_ops import TaskOps
from nanoclaw.host.web import WebServer, web_token
from nanoclaw.host.sessions import SessionManager
from nanoclaw.host.streaming import StreamRelay
from nanoclaw.host.supervisor import Supervisor
from nanoclaw.logs import get_logger
from nanoclaw.safefs import UnsafePath
from nanoclaw.sandbox.base import Runtime, label_for
from nanoclaw.protocol.link import LinkServer
from nanoclaw.protocol.messages import Route
from nanoclaw.sandbox import detect
from nanoclaw.sandbox.identity import check_uid_range
from nanoclaw.sandbox.mounts import Allowlist
from nanoclaw.vault.ca import CertificateAuthority
from nanoclaw.vault.backend import open_backend
from nanoclaw.vault.collect import CredentialDesk
from nanoclaw.vault.onecli import OneCliVault
from nanoclaw.vault.policy import POLICY_FILE
from nanoclaw.vault.proxy import EgressProxy, Upstream
from nanoclaw.vault.store import SecretStore

log = get_logger("nanoclaw.host")
RESET_NOTICE = ("⚠️ This conversation's storage was damaged, so it was set aside for the owner to inspect and "
                "we start fresh from here. Please send your last message again.")


class Host:
    def __init__(
        self, settings: Settings, *, runtime: Runtime | None = None, channels: Iterable[type[Channel]] = (),
        clock: Clock | None = None,
    ) -> None:
        providers = set(registry.names(registry.PROVIDERS))
        provider = settings.default_provider(providers)
        if provider not in providers:
            raise ConfigError(f"provider {provider!r} is not installed (installed: {', '.join(sorted(providers))})")
        runtime_name = settings.runtime or (runtime.name if runtime else detect.detect())
        self.settings = settings = settings.with_overrides(provider=provider, runtime=runtime_name)
        # The secret backend (builtin or OneCLI): one that cannot work stops the host here, before anything opens.
        self.vault = vault = open_backend(settings, for_host=True)
        onecli = vault if isinstance(vault, OneCliVault) else None
        bootstrap.ensure_home(settings)
        self.conn = db.connect(settings.db_path)
        bootstrap.first_run(self.conn, settings)
        self.web = WebServer(settings, web_token(settings))
        self.label = label_for(settings.home)
        self.runtime = runtime or registry.load(registry.RUNTIMES, settings.runtime).from_settings(settings)
        if not self.runtime.doorbells:
            self.settings = settings = settings.with_overrides(doorbell=False)  # sessions poll instead
        self.api = LocalApi(settings.socket_path)
        self.folders = Folders.for_settings(settings, group_owners(self.conn, settings))
        self.sessions = SessionManager(settings, self.conn, self.folders)
        self.channels: dict[str, Channel] = {}
        # Configured channels that are not running (library missing, failed to start), with why and the fix.
        self.channel_problems: dict[str, Health] = {}
        for cls in [*self._configured_channels(), *channels]:
            self.channels[cls.type] = cls(self)
        self.sessions.formatting = {name: ch.capabilities.formatting for name, ch in self.channels.items()}
        self.starter = ChannelStarter(self.channels, self._channel_connected, self.channel_problems)
        self.agents = AgentRelay(settings, self.conn, self.sessions, lambda sid: self.supervisor.wake(sid))
        # Channels still connecting are left out of what may send; their messages wait for them.
        connected = self.starter.connected
        self.actions = Actions(self.conn, connected, self.agents)
        self.cards = CardBoard(self.conn, connected, self.starter.connecting)
        self.actions.cards = self.cards
        self.delivery = Delivery(self.conn, self.sessions, connected, self.actions,
                                 connecting=self.starter.connecting)
        self.delivery.card_posted = lambda card, platform_id: self.cards.posted(
            card.card_id or "", card.route, platform_id, f"**{card.title}**\n{card.text}" if card.title else card.text)
        self.streams = StreamRelay(self.sessions, connected, settings.streams_to,
                                   lambda session_id: session_id in self.supervisor.live)
        self.actions.streams = self.streams
        self.supervisor = Supervisor(
            settings, self.runtime, self.sessions, self.label, self._activity, self.delivery.notify_failure
        )
        self.proxy = EgressProxy(
            settings.state_dir / "proxy",
            Upstream(
                base_url=settings.extra.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
                api_key=settings.extra.get("ANTHROPIC_API_KEY") or None,
                auth_token=settings.extra.get("ANTHROPIC_AUTH_TOKEN") or None,
            ),
            allow_private=settings.egress_allow_private,
            vault=vault if isinstance(vault, SecretStore) else None,
            policy_path=settings.config_dir / POLICY_FILE,
            ca=(ca := CertificateAuthority(settings.config_dir, settings.state_dir / "vault-certs")),
            onecli=onecli,
        )
        # Sandboxes trust the vault's CA and, with OneCLI, OneCLI's (its gateway signs the hosts it injects into).
        also = (onecli.ca_cert,) if onecli is not None and onecli.ca_cert is not None else ()
        ca_files: list[tuple[Path, Path]] = []

        def sandbox_ca_files() -> tuple[Path, Path]:
            if not ca_files:  # written once per host start, when the first sandbox needs them
                ca_files.append((ca.certificates(settings.state_dir / "ca-extra.pem", also) if also else ca.cert_path,
                                 ca.bundle(settings.state_dir / "ca-bundle.pem", also)))
            return ca_files[0]

        self.sessions.ca_files = sandbox_ca_files
        self._proxy_sockets: dict[str, Path] = {}
        # Where the sandbox's kernel does not share file locks with the host's (gVisor), the runner
        # reaches its session's databases through the host (protocol/link.py).
        self.links = None if self.runtime.shares_file_locks else LinkServer(settings.state_dir / "links")
        self.supervisor.prepare = self._prepare_sandbox
        self.sessions.link_socket = lambda session_id: self.links.path(session_id) if self.links else None
        self.pool = Pool(
            settings, self.runtime, self.sessions,
            ProxySlots(lambda slot, group: self.proxy.open_slot(slot, group, self._upstream_for(group)),
                       self.proxy.token, self.proxy.bind, self.proxy.close_session),
            self.label, self.supervisor.memory, occupied=self.supervisor.occupied, busy=self.supervisor.busy,
            live_mb=self.supervisor.live_mb,
        )
        self.supervisor.pool = self.pool
        self.sessions.proxy_socket = lambda session_id, _group: self._proxy_sockets.get(session_id)
        self.sessions.proxy_token = self.proxy.token
        self.router = Router(
            settings, self.conn, self.sessions, self.supervisor.wake,
            {name: ch.capabilities for name, ch in self.channels.items()},
        )
        self.questions = QuestionDesk(self.conn, self.sessions, self.supervisor.wake)
        self.scheduler = Scheduler(self.conn, self.sessions, self.supervisor.wake, clock,
                                   default_timezone=settings.timezone or None)
        self.scheduler.prewarm, self.scheduler.prewarm_lead = self.supervisor.prestart, settings.task_prewarm
        for action in TASK_ACTIONS:
            self.actions.register_system(action, self.scheduler.handle)
        self.notices = OwnerNotices(lambda: self.gate.admin_route(), self._say, self.folders.usage)
        admin = AdminActions(self.conn, lambda: Allowlist.for_settings(settings), self.notices.notify)
        for action in ADMIN_ACTIONS:
            self.actions.register_system(action, admin.handle)
        self.delivery.task_finished = self.scheduler.task_finished
        self.delivery.turn_changed = self._turn_changed
        self.sessions.notice = self.notices.notify
        TaskOps(self.conn, self.scheduler).register(self.api)
        self.router.questions = self.questions
        self.questions.closed = self.cards.close
        self.gate = Gatekeeper(self.conn, self._send_card, self.router.receive, reads=self.router.reads)
        self.gate.closed = self.cards.close
        self.router.gate = self.gate
        self.new_chats = NewChats(self.conn, self._send_card, self.router.receive, self.gate.admin_route)
        self.pairing = Pairing(self.conn, self.new_chats, self._send_card, self._say, self.gate.admin_route)
        self.new_chats.pair = self.pairing.request
        self.gate.choosers.update(new_chat=self.new_chats.choose, pairing=self.pairing.choose)
        self.owners = Owners(self.conn, self._say, self.new_chats.release)
        self.router.new_chats, self.router.owners = self.new_chats, self.owners
        admin.wired = lambda chat_id: self.notices.background(self.new_chats.release(chat_id))
        OnboardingOps(self.conn, self.pairing, self.new_chats, self.gate.decide).register(self.api)
        self.packages = PackageRequests(self.conn, self.runtime, self._send_card, self._say, self.gate.admin_route,
                                        self.supervisor.retire_group)
        self.actions.register_system("install_packages", self.packages.request)
        self.gate.deciders["install_packages"] = self.packages.decide
        self.sessions.image_for = self.packages.image_for
        self.mcp_servers = McpServerRequests(self.conn, self._send_card, self.gate.admin_route,
                                             self.supervisor.retire_group, settings.provider)
        self.actions.register_system("add_mcp_server", self.mcp_servers.request)
        self.gate.deciders["add_mcp_server"] = self.mcp_servers.decide
        self.egress_approvals = EgressApprovals(self.conn, self._send_card, self.delivery.edit_host_message,
                                                self.gate.admin_route, settings.egress_approval_timeout)
        self.proxy.approve = self.egress_approvals.ask
        self.gate.deciders["egress"] = self.egress_approvals.decide
        self.credentials = CredentialDesk(vault, lambda sid: self.sessions.end(sid).routing(),
                                          self._send_card, self.delivery.answer_later, self.web,
                                          may_answer=self._may_enter_credentials)
        self.credentials.closed = self.cards.close
        self.actions.register_system("request_credential", self.credentials.request)
        agent_requests = AgentRequests(self.conn, self.agents, self._send_card, self.gate.admin_route)
        self.actions.register_system("create_agent", agent_requests.request)
        self.gate.deciders["create_agent"] = agent_requests.decide
        self.router.host_commands = HostCommands(self.conn, lambda: set(self.supervisor.live), self.gate.decide,
                                                 self._interrupt)
        self.router.respond = self._say
        self.dashboard = Dashboard(self)
        DashboardLevers(self.web, self.conn, self.scheduler, vault, self.sessions)
        web_chat = self.channels.get("web")
        if isinstance(web_chat, WebChannel):  # the dashboard's live state rides on the web chat's socket
            web_chat.on_subscribe["dashboard"] = self.dashboard.event
            self.dashboard.push = lambda event: web_chat.publish(event, topic="dashboard")
        PeoplePanel(self.conn, self.channel_health, self.gate.decide, self.web.add_page)
        diagnostics = Diagnostics(self.conn, self.status, lambda: list(self.dashboard.logs.lines), settings.extra,
                                  settings.home)
        for action in DIAGNOSTIC_ACTIONS:
            self.actions.register_system(action, diagnostics.handle)
        self.started_at = time.time()
        self._lock_fd: int | None = None
        self._stopped = asyncio.Event()
        self._closed = False
        self.api.register("status", self._op_status)
        self.api.register("ping", self._op_ping)

    def _configured_channels(self) -> list[type[Channel]]:
        # An unconfigured channel is never imported.
        always = ("terminal", "web")
        names = [n for n in registry.names(registry.CHANNELS) if n in always or self.settings.channel_enabled(n)]
        found = []
        for name in names:
            try:
                found.append(registry.load(registry.CHANNELS, name))
            except ImportError as exc:  # its client library is missing: the others still start
                log.error("channel.not_installed", channel=name, missing=exc.name or str(exc),
                          fix="pip install 'nanoclaw[channels]' (./scripts/run does)")
                self.channel_problems[name] = Health.failed(
                    f"its client library is not installed (missing {exc.name or exc})",
                    "pip install 'nanoclaw[channels]' (./scripts/run does), then restart")
        return found

    async def _prepare_sandbox(self, session_id: str) -> None:
        await self._open_proxy(session_id)
        if self.links is not None:
            end = self.sessions.end(session_id)
            try:
                end.check_files()  # the runner could write them since the last start
                await self.links.open(session_id, end.pinned())
            except (UnsafePath, sqlite3.DatabaseError) as exc:  # e.g. an agent wrote the database without locks
                end, route = self.sessions.reset(session_id, f"{type(exc).__name__}: {exc}")
                await self.links.open(session_id, end.pinned())
                if route is not None:
                    await self._say(route, RESET_NOTICE)

    async def _open_proxy(self, session_id: str) -> None:
        group_id = self.sessions.get(session_id).agent_group_id
        self._proxy_sockets[session_id] = await self.proxy.open_session(session_id, group_id,
                                                                        self._upstream_for(group_id))

    def _upstream_for(self, group_id: str) -> Upstream | None:
        """The model API of a group's provider, when it is not the default (Anthropic's)."""
        group = agent_groups.get(self.conn, group_id)
        if group is None or (group.provider or self.settings.provider) != "openai":
            return None
        extra = self.settings.extra
        return Upstream(base_url=group.base_url or extra.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
                        auth_token=extra.get("OPENAI_API_KEY") or None)

    def _activity(self, session_id: str) -> None:
        """A session's runner wrote something: replies to deliver, answers being written to show."""
        self.delivery.kick(session_id)
        self.streams.kick(session_id)

    def _turn_changed(self, session_id: str, working: bool) -> None:
        self.supervisor.turn_changed(session_id, working)
        self.streams.turn_changed(session_id, working)
        if not working:
            self.notices.check_quota(self.sessions.get(session_id).agent_group_id)

    # -- what channels see (ChannelHost) -----------------------------------

    async def receive(self, event: InboundEvent) -> IngestResult:
        return await self.router.receive(event)

    async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
        if card_id.startswith("oa-"):
            # Judged on the channel the card was shown in: anyone in that chat sees the buttons, only an owner
            # or admin identity there (any linked account) may press them.
            approval = approvals_db.get(self.conn, card_id)
            admin = self.gate.admin_route()
            shown_in = approval.sent_to if approval is not None and approval.sent_to else (
                admin.channel_type if admin is not None else None)
            if not self.owners.may_decide(shown_in, sender_id):
                log.warning("approval.refused_sender", approval=card_id)
                return "Only the owner or an admin may decide this."
            choice = value.strip()
            approve = choice.lower() in ("approve", "yes", "allow") or choice.lower().startswith("answer")
            user = users.find(self.conn, shown_in, sender_id) if shown_in else None
            outcome = await self.gate.decide(card_id, approve, sender_id, choice=choice,
                                             who=user.display_name if user else None)
            if admin is not None:
                await self._say(admin, outcome)
            return None
        return await self.questions.answer(card_id, value, sender_id)

    def _channel_connected(self, channel_type: str) -> None:
        """What waited for a channel to connect goes out now: messages, then the closing of stale cards."""
        self.delivery.channel_ready(channel_type)
        self.notices.background(self.cards.channel_ready(channel_type))

    async def _say(self, route: Route, text: str) -> None:
        await self.delivery.say(OutgoingMessage(route=route, kind="system", text=text, id=f"host-{uuid.uuid4().hex}"))

    async def _send_card(self, route: Route, title: str, text: str, buttons: tuple[str, ...],
                         card_id: str, payload: dict[str, Any] | None = None) -> str | None:
        if card_id.startswith("oa-"):
            approvals_db.set_sent_to(self.conn, card_id, route.channel_type)
        # Delivery records the card's copy when it goes out (now, or once its channel connects).
        return await self.delivery.say(OutgoingMessage(route=route, kind="card", text=text, id=f"card-{card_id}",
                                                       title=title, buttons=buttons, card_id=card_id,
                                                       payload=payload or {}))

    def channel_ready(self, channel_type: str) -> None:
        self.delivery.channel_ready(channel_type)

    def stop_turn(self, route: Route) -> bool:
        """The person pressed stop in a chat: interrupt what the agent is doing for it (False: nothing was)."""
        chat = messaging_groups.find(self.conn, route.channel_type, route.platform_id)
        commands = self.router.host_commands
        return chat is not None and commands is not None and commands.stop(chat, route.thread_id)

    def _interrupt(self, session_id: str) -> bool:
        if session_id not in self.supervisor.live:
            return False
        end = self.sessions.end(session_id)
        if not end.unfinished():
            return False
        end.request_interrupt()
        log.info("turn.stop_requested", session=session_id)
        return True

    def submit_credential(self, token: str, value: str | None, *, sender_id: str) -> str:
        return self.credentials.complete(token, value, sender_id=sender_id)

    def _may_enter_credentials(self, route: Route, sender_id: str) -> bool:
        """In a DM the person asked answers; in a group chat only the owner or an admin, since the agent
        would act with whatever account's key was typed in."""
        chat = messaging_groups.find(self.conn, route.channel_type, route.platform_id)
        if chat is not None and chat.is_dm:
            return True
        user = users.find(self.conn, route.channel_type, sender_id)
        return user is not None and user.role in ("owner", "admin")

    def register_local_op(self, op: str, handler: LocalHandler) -> None:
        self.api.register(op, handler)

    def register_webhook(self, name: str, handler: WebhookHandler) -> str:
        return self.web.register_webhook(name, handler)

    def register_page(self, method: str, path: str, handler: WebhookHandler) -> None:
        self.web.add_page(method, path, handler)

    @property
    def web_url(self) -> str:
        return self.web.url

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._lock_fd = bootstrap.take_host_lock(self.settings.home)
        if os.geteuid() == 0:
            check_uid_range(self.settings.sandbox_uid_base)
        self.dashboard.attach_logs()
        stopped = self.runtime.stop_orphans(self.label)
        if stopped:
            log.warning("startup.orphans_stopped", count=stopped)
        self.folders.ensure_group("main", is_admin=True)
        await self.api.start()
        self.web.bind()  # webhook URLs need the port while channels start
        await self.starter.start_local()  # the web chat registers its pages before the server opens
        await self.web.start()
        self.starter.start_others()  # each connects on its own; what waits for one goes out when it is connected
        swept = await self.egress_approvals.sweep()  # their requests died with the earlier process
        if swept:
            log.info("startup.egress_approvals_closed", count=swept)
        closed = self.questions.close_all_open() + approvals_db.expire(self.conn)
        for card_id in closed:
            await self.cards.close(card_id, EXPIRED)
        if closed:
            log.info("startup.questions_expired", count=len(closed))
        released = await self.new_chats.release_all()  # chats wired while the host was stopped
        if released:
            log.info("startup.held_released", count=released)
        await self._resume()
        self.scheduler.start()
        self.pool.start()
        await asyncio.sleep(0)  # channels whose start is instant are connected when this returns
        log.info(
            "host.started", home=self.settings.home, provider=self.settings.provider,
            runtime=self.settings.runtime, channels=",".join(self.channels),
        )

    async def _resume(self) -> None:
        """Deliver what an earlier host left undelivered; wake sessions with unanswered messages."""
        for session in session_rows.list_all(self.conn):
            if not self.sessions.has_folder(session):
                continue
            try:
                end = self.sessions.end(session.id)
            except Exception as exc:
                log.error("startup.session_unreadable", session=session.id, error=f"{type(exc).__name__}: {exc}")
                continue
            end.skip_old_acks()
            self.delivery.kick(session.id)
            if end.unfinished():
                await self.supervisor.wake(session.id)

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.scheduler.stop()
        await self.supervisor.stop()
        await self.pool.stop()
        await self.notices.flush()  # what the owner was just told (a folder repaired meanwhile) still goes out
        await self.starter.stop()
        await self.delivery.stop()
        await self.streams.stop()
        await self.credentials.stop()
        await self.web.stop()
        self.dashboard.detach_logs()
        await self.proxy.stop()
        await self.api.stop()
        if self.links is not None:
            self.links.close_all()
        self.sessions.close()
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            log.info("host.stopping")
            await self.stop()

    def request_stop(self) -> None:
        self._stopped.set()

    # -- local API ops -------------------------------------------------------

    async def _op_ping(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid()}

    async def _op_status(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        return {"ok": True, "status": self.status()}

    def channel_health(self) -> dict[str, dict[str, Any]]:
        """Each configured channel's connection: connected, retrying (reason, next try) or failed (reason, fix)."""
        health = {name: ch.health for name, ch in self.channels.items()}
        health.update(self.channel_problems)
        return {name: health[name].public() for name in sorted(health)}

    def status(self) -> dict[str, Any]:
        self.supervisor.measure()
        live = self.supervisor.live
        sessions = []
        for s in session_rows.list_all(self.conn):
            chat = messaging_groups.get(self.conn, s.messaging_group_id) if s.messaging_group_id else None
            runner = live.get(s.id)
            sessions.append({
                "id": s.id, "agent_group": s.agent_group_id, "mode": s.mode, "status": s.status,
                "chat": f"{chat.channel_type}:{chat.platform_id}" if chat else "*", "thread": s.thread_id,
                "runner_pid": runner.process.pid if runner else None,
                "runner_uptime": round(time.monotonic() - runner.started_at, 1) if runner else None,
                "runner_rss_mb": round(runner.rss_mb, 1) if runner else None,
                "last_active": s.last_active,
            })
        return {
            "pid": os.getpid(), "home": str(self.settings.home), "uptime": round(time.time() - self.started_at, 1),
            "provider": self.settings.provider, "runtime": self.settings.runtime,
            "channels": sorted(self.channels), "channel_health": self.channel_health(),
            "channel_states": dict(sorted(self.starter.state.items())),
            "agent_groups": [{"id": g.id, "name": g.name, "admin": g.is_admin} for g in agent_groups.list_all(self.conn)],
            "sessions": sessions, "live_runners": len(live), "max_sandboxes": self.settings.max_sandboxes,
            "queue": self.supervisor.queued, "delivered": self.delivery.delivered_count,
            "memory": {"budget_mb": round(self.supervisor.memory.budget_mb),
                       "runners_mb": round(self.supervisor.live_mb(), 1), "pool_mb": round(self.pool.memory_mb(), 1)},
            "pool": {"target": self.pool.target(), "off": self.pool.why_off, "adopted": self.pool.adoptions,
                     "sandboxes": self.pool.describe()},
        }
