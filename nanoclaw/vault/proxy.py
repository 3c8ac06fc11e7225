"""The egress proxy: one unix socket per session, bind-mounted into its sandbox.

Speaks HTTP/1.1 (h11). Three kinds of request arrive on a socket:

* origin-form (`POST /v1/messages`): the model gateway. Forwarded to the real
  model API with the real credential injected; the sandbox only ever holds a
  placeholder. Responses stream back unbuffered (SSE).
* absolute-form (`GET http://host/path`): plain HTTP proxying.
* `CONNECT host:port`: a tunnel, for HTTPS_PROXY (interception comes with the vault).

Destinations on loopback, private or link-local addresses are refused unless
allowed, so a sandbox cannot reach the host's own services through the proxy.
Each request is logged as one audit event, never with header values or bodies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx

from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.vault.proxy")

MAX_BODY = 32 * 1024 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length",
}
CREDENTIAL_HEADERS = {"x-api-key", "authorization"}


@dataclass(frozen=True)
class Upstream:
    """The real model API."""

    base_url: str = "https://api.anthropic.com"
    api_key: str | None = None  # injected as x-api-key
    auth_token: str | None = None  # injected as Authorization: Bearer


class EgressProxy:
    def __init__(self, socket_dir: Path, upstream: Upstream, *, allow_private: bool = False) -> None:
        self.socket_dir = socket_dir
        self.upstream = upstream
        self.allow_private = allow_private
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._upstreams: dict[str, Upstream] = {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=600.0), follow_redirects=False)

    async def open_session(self, session_id: str, agent_group_id: str, upstream: Upstream | None = None) -> Path:
        """Serve a socket for this session (idempotent); returns its path. `upstream` overrides the model API."""
        path = self.socket_dir / f"{session_id}.sock"
        self._upstreams[session_id] = upstream or self.upstream
        if session_id in self._servers:
            return path
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _Connection(self, session_id, agent_group_id, reader, writer).run()
            except asyncio.CancelledError:  # the host is stopping
                writer.close()

        self._servers[session_id] = await asyncio.start_unix_server(serve, path=str(path))
        os.chmod(path, 0o600)  # only the host and the sandbox user (a root host hands it over at start)
        return path

    async def close_session(self, session_id: str) -> None:
        server = self._servers.pop(session_id, None)
        if server is not None:
            server.close()
            (self.socket_dir / f"{session_id}.sock").unlink(missing_ok=True)

    async def stop(self) -> None:
        for session_id in list(self._servers):
            await self.close_session(session_id)
        await self._client.aclose()

    async def destination_allowed(self, host: str, port: int) -> str | None:
        """None if the proxy may connect there, else why not."""
        if self.allow_private:
            return None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port)
        except OSError:
            return f"cannot resolve {host}"
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                return f"{host} resolves to a non-public address ({address}); the sandbox may not reach it"
        return None


class _Connection:
    def __init__(
        self, proxy: EgressProxy, session_id: str, group: str, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.session_id = session_id
        self.group = group
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER)

    async def run(self) -> None:
        try:
            while True:
                request = await self._next_event()
                if not isinstance(request, h11.Request):
                    return
                if request.method == b"CONNECT":
                    await self._connect(request)
                    return
                body = await self._body()
                await self._forward(request, body)
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()
        except (h11.RemoteProtocolError, ValueError) as exc:
            await self._error(400, f"malformed request: {exc}")
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError):
            pass
        finally:
            self.writer.close()

    async def _next_event(self) -> h11.Event:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                self.conn.receive_data(data)
                continue
            return event

    async def _body(self) -> bytes:
        chunks, size = [], 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise ValueError(f"request body over {MAX_BODY} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise ValueError("unexpected event in request body")

    def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.writer.write(data)

    async def _error(self, status: int, text: str, method: str = "", host: str = "") -> None:
        self._audit(method, host, "", status, 0.0, decision="refused" if status == 403 else "error")
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = (text + "\n").encode()
        try:
            self._send(h11.Response(status_code=status, headers=[("content-type", "text/plain; charset=utf-8"),
                                                                 ("content-length", str(len(body)))]))
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
            await self.writer.drain()
        except (h11.LocalProtocolError, ConnectionError):
            pass

    async def _forward(self, request: h11.Request, body: bytes) -> None:
        started = time.monotonic()
        target = request.target.decode("latin-1")
        method = request.method.decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers]
        if target.startswith("/"):
            url = self._upstream.base_url.rstrip("/") + target
            headers = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in CREDENTIAL_HEADERS]
            headers += self._credentials()
            kind = "model"
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await self._error(400, f"unsupported proxy target {target[:200]!r}", method)
                return
            refusal = await self.proxy.destination_allowed(parts.hostname, parts.port or 80)
            if refusal:
                await self._error(403, f"NanoClaw egress refused: {refusal}", method, parts.hostname)
                return
            url = target
            headers = [(k, v) for k, v in headers if k not in HOP_BY_HOP]
            kind = "proxy"
        host = urlsplit(url).hostname or ""
        try:
            upstream = self.proxy._client.build_request(method, url, headers=headers, content=body)
            response = await self.proxy._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            await self._error(502, f"NanoClaw proxy: upstream {host} unreachable ({type(exc).__name__})", method, host)
            return
        try:
            out_headers = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
            if "content-length" in response.headers and not response.headers.get("content-encoding"):
                out_headers.append(("content-length", response.headers["content-length"]))
            self._send(h11.Response(status_code=response.status_code, headers=out_headers))
            async for chunk in response.aiter_raw():
                self._send(h11.Data(data=chunk))
                await self.writer.drain()  # unbuffered: each SSE event reaches the sandbox now
            self._send(h11.EndOfMessage())
            await self.writer.drain()
        finally:
            await response.aclose()
            self._audit(method, host, urlsplit(url).path, response.status_code, time.monotonic() - started, kind)

    @property
    def _upstream(self) -> Upstream:
        return self.proxy._upstreams.get(self.session_id, self.proxy.upstream)

    def _credentials(self) -> list[tuple[str, str]]:
        upstream = self._upstream
        if upstream.auth_token:
            return [("authorization", f"Bearer {upstream.auth_token}")]
        if upstream.api_key:
            return [("x-api-key", upstream.api_key)]
        return []

    async def _connect(self, request: h11.Request) -> None:
        started = time.monotonic()
        target = request.target.decode("latin-1")
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit():
            await self._error(400, f"bad CONNECT target {target[:200]!r}", "CONNECT")
            return
        refusal = await self.proxy.destination_allowed(host, int(port_text))
        if refusal:
            await self._error(403, f"NanoClaw egress refused: {refusal}", "CONNECT", host)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, int(port_text)), 30)
        except (OSError, asyncio.TimeoutError) as exc:
            await self._error(502, f"NanoClaw proxy: cannot connect to {host} ({type(exc).__name__})", "CONNECT", host)
            return
        self._send(h11.Response(status_code=200, headers=[]))
        await self.writer.drain()
        leftover = self.conn.trailing_data[0]
        if leftover:
            up_writer.write(leftover)
        self._audit("CONNECT", host, "", 200, 0.0, "tunnel")
        await asyncio.gather(_pipe(self.reader, up_writer), _pipe(up_reader, self.writer))
        log.debug("egress.tunnel_closed", session=self.session_id, host=host, seconds=round(time.monotonic() - started, 1))

    def _audit(self, method: str, host: str, path: str, status: int, seconds: float, decision: str) -> None:
        log.info("egress.request", session=self.session_id, agent_group=self.group, method=method or "?",
                 host=host or "?", path=path[:200] or "-", status=status, decision=decision,
                 ms=round(seconds * 1000))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass
