"""The egress proxy: one unix socket per session, bind-mounted into its sandbox.

Speaks HTTP/1.1 (h11). Three kinds of request arrive on a socket:

* origin-form (`POST /v1/messages`): the model gateway. Forwarded to the real
  model API with the real credential injected; the sandbox only ever holds a
  placeholder. Responses stream back unbuffered (SSE).
* absolute-form (`GET http://host/path`): plain HTTP proxying.
* `CONNECT host:port`: a tunnel, for HTTPS_PROXY. When the vault holds a secret
  for that host, the proxy terminates TLS itself (a certificate from the vault's
  CA, which sandboxes trust), adds the secret's header to each request, and
  redacts the value should the upstream echo it back. With the OneCLI backend, a
  tunnel to a host OneCLI holds a secret for goes through OneCLI's gateway
  instead (after the same authentication and egress policy), which does that.

Destinations on loopback, private or link-local addresses are refused unless
allowed, so a sandbox cannot reach the host's own services through the proxy.
Each request is logged as one audit event, never with header values or bodies.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable
from urllib.parse import urlsplit

import h11

from nanoclaw.errors import ConfigError
from nanoclaw.logs import get_logger, quiet_http_clients
from nanoclaw.vault.addresses import EgressRefused, Resolver, checked_address, system_resolver, url_host
from nanoclaw.vault.ca import CertificateAuthority
from nanoclaw.vault.onecli import Gateway, OneCliVault
from nanoclaw.vault.policy import Decision, Policy
from nanoclaw.vault.redact import Redactor
from nanoclaw.vault.store import SecretStore

if TYPE_CHECKING:
    import httpx

log = get_logger("nanoclaw.vault.proxy")
quiet_http_clients()  # also for hosts whose logging someone else configured (tests, embedding)

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
    def __init__(self, socket_dir: Path, upstream: Upstream, *, allow_private: bool = False,
                 vault: SecretStore | None = None, ca: CertificateAuthority | None = None,
                 policy_path: Path | None = None, onecli: OneCliVault | None = None) -> None:
        self.socket_dir = socket_dir
        self.upstream = upstream
        self.allow_private = allow_private
        self.resolve: Resolver = system_resolver  # one lookup per connection (tests replace it)
        self.connect_timeout = 30.0
        self.vault = vault
        self.onecli = onecli  # the OneCLI backend: its hosts go through its gateway
        self.ca = ca
        self.policy_path = policy_path
        # Holds a request until the owner decides: (session, group, method, host, path, rule) → approved?
        self.approve: Callable[[str, str, str, str, str, str], Awaitable[bool]] | None = None
        self._policy: tuple[tuple[int, int] | None, Policy | ConfigError] = (None, Policy())
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._upstreams: dict[str, Upstream] = {}
        self._tokens: dict[str, str] = {}
        self._unbound: set[str] = set()  # pooled sandboxes' sockets, refused until adoption names their session
        self._bound: dict[str, str] = {}  # pooled sandbox → the session it serves
        # httpx (and OneCLI's client) are loaded at the first request that needs them, not with the host.
        self._client: httpx.AsyncClient | None = None
        self._onecli_client: httpx.AsyncClient | None = None

    async def open_session(self, session_id: str, agent_group_id: str, upstream: Upstream | None = None) -> Path:
        """Serve a socket for this session (idempotent); returns its path. `upstream` overrides the model API."""
        path = self.socket_dir / f"{session_id}.sock"
        self._upstreams[session_id] = upstream or self.upstream
        self._tokens.setdefault(session_id, secrets.token_urlsafe(24))
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

    async def open_slot(self, slot: str, agent_group_id: str, upstream: Upstream | None = None) -> Path:
        """A pooled sandbox's socket: it answers nothing but refusals until bind() names a session."""
        self._unbound.add(slot)
        return await self.open_session(slot, agent_group_id, upstream)

    def bind(self, slot: str, session_id: str) -> None:
        """Adoption: from now on the pooled sandbox's requests are the session's (audit, approvals)."""
        self._bound[slot] = session_id
        self._unbound.discard(slot)

    def session_of(self, key: str) -> str | None:
        """The session a socket acts for (None: a pooled sandbox not adopted yet)."""
        return None if key in self._unbound else self._bound.get(key, key)

    def token_serving(self, session_id: str) -> str | None:
        """The token of the socket acting for a session: its own, or that of the pooled sandbox it adopted."""
        slot = next((slot for slot, session in self._bound.items() if session == session_id), None)
        return self._tokens.get(slot or session_id)

    def token(self, session_id: str) -> str | None:
        """The session's proxy token: its sandbox sends it with every request (also as the model API key)."""
        return self._tokens.get(session_id)

    async def close_session(self, session_id: str) -> None:
        self._tokens.pop(session_id, None)
        self._unbound.discard(session_id)
        self._bound.pop(session_id, None)
        server = self._servers.pop(session_id, None)
        if server is not None:
            server.close()
            (self.socket_dir / f"{session_id}.sock").unlink(missing_ok=True)

    async def stop(self) -> None:
        for session_id in list(self._servers):
            await self.close_session(session_id)
        for client in (self._client, self._onecli_client):
            if client is not None:
                await client.aclose()
        self._client = self._onecli_client = None

    def client(self) -> httpx.AsyncClient:
        """The client for requests NanoClaw sends itself (the model API, plain HTTP, intercepted HTTPS)."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=600.0), follow_redirects=False)
        return self._client

    def policy(self) -> Policy:
        """The egress policy, reloaded when its file changed; raises ConfigError while the file is invalid."""
        if self.policy_path is None:
            return self._policy[1] if isinstance(self._policy[1], Policy) else Policy()
        try:
            st = self.policy_path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._policy[0]:
            try:
                self._policy = (stamp, Policy.load(self.policy_path))
            except ConfigError as exc:
                log.error("egress.policy_invalid", error=str(exc))
                self._policy = (stamp, exc)
        current = self._policy[1]
        if isinstance(current, ConfigError):
            raise current
        return current

    def judge(self, group: str, host: str, method: str, path: str) -> Decision:
        try:
            return self.policy().decide(group, host, method, path)
        except ConfigError as exc:  # fail closed: an unreadable policy lets nothing out
            return Decision("deny", "invalid-policy", f"the egress policy file is invalid ({exc})")

    def intercepts(self, group: str, host: str) -> bool:
        if self.ca is None:
            return False
        try:
            inspects = self.policy().inspects(group, host)
        except ConfigError:
            inspects = False
        return inspects or (self.vault is not None and self.vault.wants(host, group))

    async def destination(self, host: str, port: int) -> str:
        """The one address the proxy connects to for host:port, checked (EgressRefused says why not)."""
        return await checked_address(host, port, self.resolve, allow_private=self.allow_private)

    async def via_onecli(self, url: str) -> httpx.AsyncClient | None:
        """The client through OneCLI's gateway when OneCLI holds a secret for this HTTPS URL's host."""
        parts = urlsplit(url)
        if self.onecli is None or parts.scheme != "https" or not await self.onecli.routes(parts.hostname or ""):
            return None
        if self._onecli_client is None:
            self._onecli_client = self.onecli.http_client()
        return self._onecli_client


class _Connection:
    def __init__(
        self, proxy: EgressProxy, session_id: str, group: str, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.key = session_id  # the socket's name: a session's id, or a pooled sandbox's
        self.group = group
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER)
        self.origin: str | None = None  # https://host[:port] once a CONNECT is intercepted
        self.origin_address: str | None = None  # the address checked for it, the only one connected to

    @property
    def session_id(self) -> str:
        return self.proxy.session_of(self.key) or ""

    async def run(self) -> None:
        try:
            await self._serve()
        except (h11.RemoteProtocolError, ValueError) as exc:
            await self._error(400, f"malformed request: {exc}")
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError, ssl.SSLError):
            pass
        finally:
            self.writer.close()

    async def _serve(self) -> None:
        while True:
            request = await self._next_event()
            if not isinstance(request, h11.Request):
                return
            if self.origin is None and not await self._authenticated(request):
                return
            if request.method == b"CONNECT" and self.origin is None:
                await self._connect(request)
                return
            body = await self._body()
            await self._forward(request, body)
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                return
            self.conn.start_next_cycle()

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

    async def _error(self, status: int, text: str, method: str = "", host: str = "", path: str = "") -> None:
        decision = {403: "refused", 429: "rate-limited", 401: "unauthenticated", 407: "unauthenticated"}.get(
            status, "error")
        self._audit(method, host, path, status, 0.0, decision=decision)
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
        import httpx  # loaded with the first forwarded request, not with the host

        started = time.monotonic()
        target = request.target.decode("latin-1")
        method = request.method.decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers]
        secrets: list[tuple[str, str]] = []
        client: httpx.AsyncClient | None = None
        address: str | None = None  # where the request goes when the agent chose the host: the checked address
        if self.origin is not None:  # inside an intercepted CONNECT: the vault's secrets go in here
            url = self.origin + (target if target.startswith("/") else "/")
            address = self.origin_address
            parts = urlsplit(url)
            if not await self._admitted(parts.hostname or "", method, parts.path):
                return
            if self.proxy.vault is not None:
                secrets = self.proxy.vault.for_request(parts.hostname or "", method, parts.path, self.group)
            injected = {name.lower() for name, _ in secrets}
            headers = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in injected] + secrets
            client = await self.proxy.via_onecli(url)  # intercepted to judge by path, injected by OneCLI
            kind = "onecli" if client else "vault" if secrets else "intercepted"
        elif target.startswith("/"):
            url = self._upstream.base_url.rstrip("/") + target
            headers = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in CREDENTIAL_HEADERS]
            client = await self.proxy.via_onecli(url)  # OneCLI holds the model API's key: it injects it
            if client is None:
                headers += self._credentials(method, urlsplit(url).path)
            kind = "onecli" if client else "model"
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await self._error(400, f"unsupported proxy target {target[:200]!r}", method)
                return
            try:
                address = await self.proxy.destination(parts.hostname, parts.port or 80)
            except EgressRefused as exc:
                await self._error(403, f"NanoClaw egress refused: {exc}", method, parts.hostname)
                return
            if not await self._admitted(parts.hostname, method, parts.path):
                return
            url = target
            headers = [(k, v) for k, v in headers if k not in HOP_BY_HOP]
            kind = "proxy"
        host = urlsplit(url).hostname or ""
        try:
            extensions = {}
            if client is None and address is not None:  # never a second lookup: connect where we checked
                parts = urlsplit(url)
                netloc = url_host(address) + (f":{parts.port}" if parts.port else "")
                headers = [(k, v) for k, v in headers if k != "host"] + [("host", parts.netloc)]
                if parts.scheme == "https":  # verified for this name; not pooled for another name on that address
                    extensions = {"sni_hostname": host}
                    headers.append(("connection", "close"))
                url = parts._replace(netloc=netloc).geturl()
            client = client or self.proxy.client()
            upstream = client.build_request(method, url, headers=headers, content=body, extensions=extensions)
            response = await client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            await self._error(502, f"NanoClaw proxy: upstream {host} unreachable ({type(exc).__name__})", method, host)
            return
        try:
            out_headers = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
            if "content-length" in response.headers and not response.headers.get("content-encoding"):
                out_headers.append(("content-length", response.headers["content-length"]))
            redact = Redactor([value for _, value in secrets] + [v.split(" ", 1)[-1] for _, v in secrets])
            if secrets:  # decoded and maybe shortened: length and encoding no longer hold
                out_headers = [(k, redact.text(v)) for k, v in out_headers
                               if k.lower() not in ("content-length", "content-encoding")]
            self._send(h11.Response(status_code=response.status_code, headers=out_headers))
            chunks = response.aiter_raw() if not secrets else response.aiter_bytes()
            async for chunk in chunks:
                self._send(h11.Data(data=redact.feed(chunk)))
                await self.writer.drain()  # unbuffered: each SSE event reaches the sandbox now
            if tail := redact.flush():
                self._send(h11.Data(data=tail))
            self._send(h11.EndOfMessage())
            await self.writer.drain()
        finally:
            await response.aclose()
            self._audit(method, host, urlsplit(url).path, response.status_code, time.monotonic() - started, kind)

    @property
    def _upstream(self) -> Upstream:
        return self.proxy._upstreams.get(self.key, self.proxy.upstream)

    def _credentials(self, method: str, path: str) -> list[tuple[str, str]]:
        """The model API's key: a vault secret for its host wins over the key from the settings."""
        upstream = self._upstream
        if self.proxy.vault is not None:
            parts = urlsplit(upstream.base_url)
            from_vault = self.proxy.vault.for_request(parts.hostname or "", method, path, self.group)
            if from_vault:
                return [(name.lower(), value) for name, value in from_vault]
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
        try:
            address = await self.proxy.destination(host, int(port_text))
        except EgressRefused as exc:
            await self._error(403, f"NanoClaw egress refused: {exc}", "CONNECT", host)
            return
        if self.proxy.intercepts(self.group, host):
            assert self.proxy.ca is not None
            self.origin_address = address
            await self._intercept(host, int(port_text), self.proxy.ca)
            return
        if not await self._admitted(host, "CONNECT", ""):
            return
        onecli = self.proxy.onecli
        gateway = onecli.gateway if onecli is not None and await onecli.routes(host) else None
        try:
            if gateway is not None:
                up_reader, up_writer = await _through(gateway, host, int(port_text))
            else:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(address, int(port_text)),
                                                              self.proxy.connect_timeout)
        except _GatewayRefused as exc:
            hint = "; it wants an agent's token in ONECLI_GATEWAY_URL" if " 407" in str(exc) else ""
            await self._error(502, f"NanoClaw proxy: OneCLI's gateway refused the tunnel to {host} ({exc}){hint}",
                              "CONNECT", host)
            return
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            where = f"OneCLI's gateway at {gateway.host}:{gateway.port} for {host}" if gateway else host
            await self._error(502, f"NanoClaw proxy: cannot connect to {where} ({type(exc).__name__})", "CONNECT", host)
            return
        self._send(h11.Response(status_code=200, headers=[]))
        await self.writer.drain()
        leftover = self.conn.trailing_data[0]
        if leftover:
            up_writer.write(leftover)
        self._audit("CONNECT", host, "", 200, 0.0, "onecli" if gateway else "tunnel")
        await asyncio.gather(_pipe(self.reader, up_writer), _pipe(up_reader, self.writer))
        log.debug("egress.tunnel_closed", session=self.session_id, host=host, seconds=round(time.monotonic() - started, 1))

    async def _authenticated(self, request: h11.Request) -> bool:
        """The session's token: as the model API key on the gateway, as proxy credentials otherwise."""
        if self.proxy.session_of(self.key) is None:  # a pooled sandbox before adoption acts for no session
            log.warning("egress.before_adoption", sandbox=self.key, agent_group=self.group)
            await self._error(403, "NanoClaw proxy: this sandbox serves no session yet", request.method.decode("latin-1"))
            return False
        token = self.proxy.token(self.key)
        if token is None:
            return True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        target = request.target.decode("latin-1")
        if target.startswith("/"):
            offered = [headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer ")]
            status, text = 401, "NanoClaw gateway: this request does not carry the session's token"
        else:
            raw = headers.get("proxy-authorization", "")
            offered = [raw.removeprefix("Bearer ")]
            if raw.startswith("Basic "):
                try:
                    offered.append(base64.b64decode(raw[6:]).decode().partition(":")[2])
                except (ValueError, UnicodeDecodeError):
                    pass
            status, text = 407, "NanoClaw proxy: wrong or missing session token (Proxy-Authorization)"
        if any(hmac.compare_digest(candidate.encode(), token.encode()) for candidate in offered if candidate):
            return True
        log.warning("egress.unauthenticated", session=self.session_id, agent_group=self.group)
        await self._error(status, text, request.method.decode("latin-1"))
        return False

    async def _admitted(self, host: str, method: str, path: str) -> bool:
        """The group's egress policy on this request; answers it (403, 429) when it may not go."""
        decision = self.proxy.judge(self.group, host, method, path)
        if decision.action == "allow":
            return True
        if decision.action == "approve" and self.proxy.approve is not None:
            approved = await self.proxy.approve(self.session_id, self.group, method, host, path, decision.rule)
            self._audit(method, host, path, 0, 0.0, f"approval-{'granted' if approved else 'refused'}")
            if approved:
                return True
            await self._error(403, f"NanoClaw egress refused: the owner did not approve {method} {host}{path} "
                                    f"(rule {decision.rule})", method, host, path)
            return False
        if decision.action == "limited":
            await self._error(429, f"NanoClaw egress: {decision.why} for {host} (rule {decision.rule}); "
                                   "try again later", method, host, path)
            return False
        why = decision.why or f"{method} {host}{path} is not allowed for this agent (rule {decision.rule})"
        await self._error(403, f"NanoClaw egress refused: {why}", method, host, path)
        return False

    async def _intercept(self, host: str, port: int, ca: CertificateAuthority) -> None:
        """Be the TLS server for `host` (our CA's certificate), then serve its requests with secrets added."""
        self._send(h11.Response(status_code=200, headers=[]))
        await self.writer.drain()
        if self.conn.trailing_data[0]:
            return  # the client did not wait for our answer: not a TLS client we can serve
        try:
            await self.writer.start_tls(ca.server_context(host))
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            log.info("egress.tls_refused", session=self.session_id, host=host, error=type(exc).__name__)
            return
        self._audit("CONNECT", host, "", 200, 0.0, "intercept")
        self.origin = f"https://{host}" + ("" if port == 443 else f":{port}")
        self.conn = h11.Connection(h11.SERVER)
        await self._serve()

    def _audit(self, method: str, host: str, path: str, status: int, seconds: float, decision: str) -> None:
        log.info("egress.request", session=self.session_id, agent_group=self.group, method=method or "?",
                 host=host or "?", path=path[:200] or "-", status=status, decision=decision,
                 ms=round(seconds * 1000))


class _GatewayRefused(Exception):
    pass


async def _through(gateway: Gateway, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A tunnel to host:port opened by OneCLI's gateway (which intercepts it to inject the secret)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(gateway.host, gateway.port), 30)
    try:
        writer.write(gateway.connect_head(host, port))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except BaseException:
        writer.close()
        raise
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        writer.close()
        raise _GatewayRefused(head.split(b"\r\n", 1)[0].decode("latin-1")[:200])
    return reader, writer


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
