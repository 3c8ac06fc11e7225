"""A real Synapse homeserver for tests, a TCP proxy that can cut the bot off it, and a person's client.

Synapse starts once per test session (`synapse()`, ~5 s), on 127.0.0.1 with SQLite, no federation and
rate limits lifted; it is stopped at interpreter exit. Each test puts its own `TcpProxy` between the
bot's client and Synapse (to drop live connections or refuse new ones) and acts as people through
`Person`, plain HTTP calls to the client-server API.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import hashlib
import hmac
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

SERVER_NAME = "localhost"
_SECRET = "nanoclaw-test-registration-secret"
_UNLIMITED = {"per_second": 10000, "burst_count": 10000}

_CONFIG = {
    "server_name": SERVER_NAME,
    "report_stats": False,
    "listeners": [{"port": 0, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                   "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
    "registration_shared_secret": _SECRET,
    "enable_registration": False,
    "bcrypt_rounds": 4,  # registering users in tests should not cost a second each
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "federation_domain_whitelist": [],
    "presence": {"enabled": False},
    "url_preview_enabled": False,
    "max_upload_size": "100M",
    "macaroon_secret_key": "test-macaroon",
    "form_secret": "test-form",
    **{name: _UNLIMITED for name in (
        "rc_message", "rc_registration", "rc_joins_per_room", "rc_3pid_validation", "rc_admin_redaction",
        "rc_media_create", "rc_room_creation", "rc_presence", "rc_reports", "rc_delayed_event_mgmt")},
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
}

_LOG_CONFIG = {
    "version": 1,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain", "filename": "PLACEHOLDER"}},
    "root": {"level": "WARNING", "handlers": ["file"]},
    "disable_existing_loggers": False,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fast_tmp() -> str | None:
    """RAM-backed /dev/shm where there is one: SQLite's syncs make creating a room cost 0.3 s on disk."""
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


def _die_with_parent() -> None:
    """Synapse must not outlive a killed test run (Linux: PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except OSError:
        pass


class Synapse:
    """One homeserver process in a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nanoclaw-synapse-", dir=_fast_tmp()))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def start(self, timeout: float = 90.0) -> None:
        began = time.monotonic()
        config = json.loads(json.dumps(_CONFIG))
        config["listeners"][0]["port"] = self.port
        log_config = json.loads(json.dumps(_LOG_CONFIG))
        log_config["handlers"]["file"]["filename"] = str(self.dir / "homeserver.log")
        config.update(
            pid_file=str(self.dir / "homeserver.pid"), media_store_path=str(self.dir / "media"),
            signing_key_path=str(self.dir / "signing.key"), log_config=str(self.dir / "log.yaml"),
            database={"name": "sqlite3", "args": {"database": str(self.dir / "homeserver.db")}},
        )
        (self.dir / "log.yaml").write_text(json.dumps(log_config))  # JSON is YAML
        (self.dir / "homeserver.yaml").write_text(json.dumps(config))
        base = [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(self.dir / "homeserver.yaml")]
        subprocess.run([*base, "--generate-keys"], check=True, capture_output=True, cwd=self.dir)
        self.proc = subprocess.Popen(base, cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "wb"), preexec_fn=_die_with_parent)
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited: {(self.dir / 'stderr.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=1).read()
                self.startup_seconds = time.monotonic() - began
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"synapse did not answer within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_instance: Synapse | None = None
_lock = threading.Lock()


def synapse() -> Synapse:
    """The session's homeserver, started on first use and stopped when the interpreter exits."""
    global _instance
    with _lock:
        if _instance is None:
            server = Synapse()
            server.start()
            atexit.register(server.stop)
            _instance = server
        return _instance


@dataclass(frozen=True)
class Account:
    user_id: str
    token: str
    password: str


_accounts: dict[str, Account] = {}


async def account(server: Synapse, localpart: str, displayname: str, admin: bool = False) -> Account:
    """A user registered through the shared-secret admin API (once per session and localpart)."""
    if localpart in _accounts:
        return _accounts[localpart]
    password = f"pw-{localpart}"
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/_synapse/admin/v1/register"
        async with http.get(url) as resp:
            nonce = (await resp.json())["nonce"]
        mac = hmac.new(_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        body = {"nonce": nonce, "username": localpart, "password": password, "displayname": displayname,
                "admin": admin, "mac": mac.hexdigest()}
        async with http.post(url, json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"register {localpart}: {data}")
    _accounts[localpart] = Account(data["user_id"], data["access_token"], password)
    return _accounts[localpart]


class Person:
    """One Matrix user acting through the client-server API (no SDK, so the test sees the wire)."""

    def __init__(self, server: Synapse, account: Account, http: aiohttp.ClientSession) -> None:
        self.server, self.account, self.http = server, account, http
        self.user_id = account.user_id

    async def call(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                   content_type: str | None = None, raw: bool = False, **params: str) -> Any:
        headers = {"Authorization": f"Bearer {self.account.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        async with self.http.request(method, f"{self.server.url}{path}", json=body, data=data,
                                     headers=headers, params=params or None) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return payload if raw else json.loads(payload)

    async def create_room(self, invite: list[str], **extra: Any) -> str:
        return str((await self.call("POST", "/_matrix/client/v3/createRoom", {"invite": invite, **extra}))["room_id"])

    async def invite(self, room: str, user_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": user_id})

    async def join(self, room: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})

    async def send(self, room: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/send/{event_type}/{uuid.uuid4().hex}"
        return str((await self.call("PUT", path, content))["event_id"])

    async def upload(self, name: str, data: bytes, mime: str) -> str:
        got = await self.call("POST", "/_matrix/media/v3/upload", data=data, content_type=mime, filename=name)
        return str(got["content_uri"])

    async def download(self, mxc: str) -> bytes:
        server, media = mxc.removeprefix("mxc://").split("/", 1)
        path = f"/_matrix/client/v1/media/download/{server}/{media}"
        return await self.call("GET", path, raw=True)  # type: ignore[no-any-return]

    async def members(self, room: str) -> set[str]:
        got = await self.call("GET", f"/_matrix/client/v3/rooms/{quote(room)}/joined_members")
        return set(got["joined"])

    async def timeline(self, room: str) -> list[dict[str, Any]]:
        """Every event of the room, oldest first."""
        got = await self.call("GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages", dir="b", limit="1000")
        return list(reversed(got["chunk"]))

    async def typing(self, room: str) -> set[str]:
        """Who the homeserver says is typing in `room` now (the m.typing ephemeral event of a sync)."""
        room_filter = {"rooms": [room], "timeline": {"limit": 0}, "state": {"types": []}}
        sync_filter = json.dumps({"room": room_filter, "presence": {"types": []}, "account_data": {"types": []}})
        got = await self.call("GET", "/_matrix/client/v3/sync", filter=sync_filter, timeout="0")
        events = got.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", [])
        return {u for e in events if e.get("type") == "m.typing" for u in e["content"].get("user_ids", [])}


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; can cut every live connection or refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.down = False
        self._open = asyncio.Event()
        self._open.set()
        self._release: asyncio.TimerHandle | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stall(self, seconds: float) -> None:
        """Hold every request (a server that accepts and does not answer) for `seconds` or until `release()`."""
        self._open.clear()
        self._release = asyncio.get_running_loop().call_later(seconds, self.release)

    def release(self) -> None:
        if self._release is not None:
            self._release.cancel()
        self._open.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._open.wait()
        except asyncio.CancelledError:  # stopped while holding it
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def drop(self) -> None:
        """Close every live connection at once, as a restarting load balancer would."""
        for writer in list(self._writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._writers.clear()

    async def set_down(self, down: bool) -> None:
        """Down: the port refuses connections (the listening socket is closed); up: it listens again."""
        self.down = down
        if down and self._server is not None:
            self._server.close()
            self.drop()
            await self._server.wait_closed()
            self._server = None
        elif not down and self._server is None:
            await self.start()

    async def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
