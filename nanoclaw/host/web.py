"""The host's web server: web chat, dashboard, credential forms and platform webhooks on one port.

Bound to 127.0.0.1 unless NANOCLAW_WEB_HOST says otherwise. The owner's pages
need a login: the link printed at start (and by `nanoclaw web-url`) carries a
token kept in the home (0600); opening it sets a cookie derived from the token.
State-changing requests also need the CSRF header the page was served with, and
a same-origin `Origin`. Credential forms carry their own one-time tokens, and
webhooks their platform's signature, so those two need no login.

The port is bound when the host starts, but aiohttp (about 12 MB of the host's
memory) is imported only when the first connection arrives: until someone
opens a page or a platform posts a webhook, the waiting connection sits in the
socket's backlog and the host stays small.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import socket
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import urlsplit

from nanoclaw.config import Settings
from nanoclaw.logs import get_logger

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("nanoclaw.host.web")

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]
COOKIE = "nanoclaw_session"
CSRF_COOKIE = "nanoclaw_csrf"  # readable by the page's script, which echoes it in the header (double submit)
CSRF_HEADER = "X-CSRF-Token"
TOKEN_FILE = "web.token"
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the login link carries the token
    "Cache-Control": "no-store",
}
_PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
             "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'")
# Any other HTML (refusals, errors) runs nothing and loads nothing.
_OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SERVER = "NanoClaw"  # never the framework and its version
_FAVICON = Path(__file__).parents[1] / "webui" / "favicon.ico"


def web_token(settings: Settings) -> str:
    """The owner's login token, made at first use and kept in the home (mode 0600)."""
    path = settings.home / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    settings.home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def login_url(settings: Settings, port: int | None = None) -> str:
    host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::", "") else settings.web_host
    return f"http://{host}:{port or settings.web_port}/login?token={web_token(settings)}"


class WebServer:
    def __init__(self, settings: Settings, token: str) -> None:
        self.settings = settings
        self.port = settings.web_port
        self._session = _derive(token, "session")
        self._csrf = _derive(token, "csrf")
        self._token = token
        self._routes: list[tuple[str, str, Handler, bool]] = []
        self._webhooks: dict[str, Handler] = {}
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._listening = False  # start() was called: serve from the first connection on
        self._serving: asyncio.Task[None] | None = None
        self._websockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    # -- what components register ------------------------------------------------

    def add_page(self, method: str, path: str, handler: Handler) -> None:
        """An owner-only route: login cookie, and for unsafe methods the CSRF header and same origin."""
        if self._runner is not None:  # aiohttp's routes are fixed once it serves: say so rather than 404 later
            raise RuntimeError(f"{method} {path}: pages are registered before the web server starts "
                               "(a channel that serves pages declares local = True)")
        self._routes.append((method, path, handler, True))

    def add_public(self, method: str, path: str, handler: Handler) -> None:
        """A route that carries its own proof (a one-time token): no login."""
        self._routes.append((method, path, handler, False))

    def register_webhook(self, name: str, handler: Handler) -> str:
        self._webhooks[name] = handler
        return f"{self.url}/hooks/{name}"

    @property
    def csrf_token(self) -> str:
        return self._csrf

    @property
    def running(self) -> bool:
        """The port is ours and is being served (at once, or from its first connection)."""
        return self._listening and self._sock is not None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.web_host in ("0.0.0.0", "::", "") else self.settings.web_host
        return f"http://{host}:{self.port}"

    @property
    def login_link(self) -> str:
        return f"{self.url}/login?token={self._token}"

    # -- lifecycle ---------------------------------------------------------------

    def bind(self) -> bool:
        """Take the port now, so webhook URLs are known while channels start; False if it is taken."""
        if self._sock is not None:
            return True
        family = socket.AF_INET6 if ":" in self.settings.web_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.web_host, self.settings.web_port))
        except OSError as exc:  # another program has the port: everything else still works
            sock.close()
            log.error("web.unavailable", port=self.settings.web_port, error=exc.strerror or str(exc))
            return False
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        return True

    async def start(self) -> None:
        """Serve what was registered (after `bind`, which this calls if needed), from the first connection."""
        if self._listening or not self.bind():
            return
        assert self._sock is not None
        self._listening = True
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._first_connection)
        log.info("web.started", url=self.url)

    def _first_connection(self) -> None:
        """A connection waits in the backlog: load aiohttp and let it accept that one and the rest."""
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock.fileno())
        self._serving = loop.create_task(self._serve())

    async def _serve(self) -> None:
        from aiohttp import web

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._guard(request, handler)

        app = web.Application(client_max_size=60 * 2**20, middlewares=[guard])
        app.on_response_prepare.append(_secure_headers)
        app.on_response_prepare.append(self._track_websocket)
        app.on_shutdown.append(self._close_websockets)  # else stopping waits for open pages to go away
        app.router.add_get("/login", self._login)
        app.router.add_get("/favicon.ico", static_file(_FAVICON))  # browsers ask before anyone logs in
        app.router.add_route("*", "/hooks/{name}{rest:(/.*)?}", self._hook)
        for method, path, handler, _auth in self._routes:
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None)  # paths hold tokens: no access log
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        self._runner = runner
        log.debug("web.serving", routes=len(self._routes))

    async def stop(self) -> None:
        if self._sock is not None and self._listening and self._serving is None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._listening = False
        if self._serving is not None:
            try:
                await self._serving
            except Exception as exc:  # noqa: BLE001 - a server that failed to start has nothing to clean up
                log.error("web.failed", error=str(exc))
            self._serving = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _track_websocket(self, request: web.Request, response: web.StreamResponse) -> None:
        from aiohttp import web

        if isinstance(response, web.WebSocketResponse):
            self._websockets.add(response)

    async def _close_websockets(self, app: web.Application) -> None:
        from aiohttp import WSCloseCode

        for ws in list(self._websockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")

    # -- checks ------------------------------------------------------------------

    def authenticated(self, request: web.Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie, self._session):
            return True
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip(), self._token)

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None  # scripts with the bearer token send none; sandboxed frames send "null"
        return urlsplit(origin).netloc == request.host

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route_auth = self._needs_login(request)
        if route_auth:
            if not self.authenticated(request):
                return _refuse(request, 401, "Log in with the link `nanoclaw web-url` prints.")
            if request.method in _UNSAFE or request.headers.get("Upgrade", "").lower() == "websocket":
                if not self._same_origin(request):
                    log.warning("web.cross_origin", path=request.path)
                    return _refuse(request, 403, "Cross-origin request refused.")
            if request.method in _UNSAFE and "Bearer " not in request.headers.get("Authorization", ""):
                if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), self._csrf):
                    log.warning("web.bad_csrf", path=request.path)
                    return _refuse(request, 403, "Missing or wrong CSRF token: reload the page.")
        response = await handler(request)
        if route_auth and response.content_type == "text/html":
            response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
        return response

    def _needs_login(self, request: web.Request) -> bool:
        info = request.match_info.route.resource
        canonical = info.canonical if info is not None else ""
        for method, path, _handler, auth in self._routes:
            if path == canonical and (method == "*" or method == request.method or
                                      (method == "GET" and request.method == "HEAD")):
                return auth
        return False  # /login, /hooks/…, and 404s

    async def _login(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        given = request.query.get("token", "")
        if not (given and hmac.compare_digest(given, self._token)):
            log.warning("web.bad_login")
            return _refuse(request, 403, "This login link is not valid. Run `nanoclaw web-url` for the current one.")
        response = web.Response(status=302, headers={"Location": "/"})
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict", path="/",
                            max_age=365 * 86400)
        response.set_cookie(CSRF_COOKIE, self._csrf, samesite="Strict", path="/", max_age=365 * 86400)
        log.info("web.login")
        return response

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        handler = self._webhooks.get(request.match_info["name"])
        if handler is None:
            from aiohttp import web

            raise web.HTTPNotFound()
        return await handler(request)


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response (pages, refusals, errors, webhooks): the security headers, and no server version."""
    for key, value in _HEADERS.items():
        response.headers.setdefault(key, value)
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", _OTHER_CSP)
    response.headers["Server"] = SERVER


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _refuse(request: web.Request, status: int, text: str) -> web.StreamResponse:
    from aiohttp import web

    if request.path.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json"):
        return web.json_response({"error": text}, status=status)
    body = f"<!doctype html><meta charset='utf-8'><title>NanoClaw</title><p>{text}</p>"
    return web.Response(status=status, text=body, content_type="text/html")


def static_file(path: Path) -> Handler:
    """Serve one packaged file (the page's script and style)."""
    kinds = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
             ".ico": "image/x-icon"}

    async def handler(request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.Response(body=path.read_bytes(), content_type=kinds.get(path.suffix, "application/octet-stream"))

    return handler


def json_body(data: Any) -> dict[str, Any]:
    """A JSON object from a request body, or a 400 the client can read."""
    if not isinstance(data, dict):
        from aiohttp import web

        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json")
    return data


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 the client can read."""
    from aiohttp import web

    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "expected a JSON body"}', content_type="application/json") from None


def json_error(status: int, text: str) -> web.Response:
    from aiohttp import web

    return web.json_response({"error": text}, status=status)
