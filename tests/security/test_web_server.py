"""The host's web server: only the owner gets in, other sites cannot act for them, files cannot escape.

A real host (mock provider) serves the web chat and dashboard; requests come
from aiohttp clients as a browser, a script and a hostile page would send them.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from nanoclaw.channels.base import FileAttachment
from nanoclaw.host.app import Host
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.host.attachments import safe_file_name, save_attachments
from nanoclaw.protocol.folder import SessionFolder
from tests.conftest import make_settings

OWNER_ROUTES = [("GET", "/"), ("GET", "/api/chat/messages"), ("POST", "/api/chat/messages"),
                ("GET", "/api/dashboard"), ("PUT", "/api/dashboard/memory/main"),
                ("POST", "/api/dashboard/onboarding"), ("GET", "/api/chat/files/f123"),
                ("POST", "/api/chat/cards/q-12345678"), ("GET", "/static/app.js")]


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(make_settings(tmp_path / "home"))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def logged_in(host: Host) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(host.web.login_link) as response:
        assert response.status == 200
    csrf = next(c.value for c in session.cookie_jar if c.key == "nanoclaw_csrf")
    return session, csrf


@pytest.mark.parametrize("method,path", OWNER_ROUTES)
async def test_every_owner_route_needs_the_login(host: Host, method: str, path: str) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.request(method, host.web_url + path, json={"text": "hi"}) as response:
            assert response.status == 401, (method, path)


async def test_wrong_tokens_are_refused_and_the_cookie_is_strict(host: Host) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for token in ("", "wrong", host.web.login_link.split("token=")[1][:-1]):
            async with client.get(f"{host.web_url}/login", params={"token": token}, allow_redirects=False) as r:
                assert r.status == 403
        assert len(client.cookie_jar) == 0
        async with client.get(host.web.login_link, allow_redirects=False) as response:
            assert response.status == 302
            cookie = response.cookies["nanoclaw_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_a_request_from_another_site_cannot_act_for_the_owner(host: Host) -> None:
    session, csrf = await logged_in(host)
    url = host.web_url + "/api/chat/messages"
    try:
        no_csrf = await session.post(url, json={"text": "forged"}, headers={"Origin": host.web_url})
        wrong_csrf = await session.post(url, json={"text": "forged"},
                                        headers={"Origin": host.web_url, "X-CSRF-Token": "0" * 64})
        other_site = await session.post(url, json={"text": "forged"},
                                        headers={"Origin": "http://evil.test", "X-CSRF-Token": csrf})
        assert (no_csrf.status, wrong_csrf.status, other_site.status) == (403, 403, 403)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(host.web_url + "/api/chat/events", headers={"Origin": "http://evil.test"})
        assert refused.value.status == 403
        ok = await session.post(url, json={"text": "from the page"}, headers={"Origin": host.web_url, "X-CSRF-Token": csrf})
        assert ok.status == 200
    finally:
        await session.close()
    history = host.channels["web"].store.history(None)  # type: ignore[attr-defined]
    assert [m["text"] for m in history if m["author"] == "owner"] == ["from the page"]


async def test_scripts_use_the_bearer_token_and_pages_carry_strict_headers(host: Host) -> None:
    token = host.web.login_link.split("token=")[1]
    async with aiohttp.ClientSession() as script:
        async with script.get(host.web_url + "/api/dashboard", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and (await r.json())["assistant"] == "Andy"
        async with script.get(host.web_url + "/", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with script.get(host.web_url + "/", headers={"Authorization": f"Bearer {token}"}) as r:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
            assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "SAMEORIGIN"
            assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_token_file_is_private_and_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = Host(make_settings(tmp_path / "home"))
    await host.start()
    try:
        token = host.web.login_link.split("token=")[1]
        session, _ = await logged_in(host)
        await session.close()
        async with aiohttp.ClientSession() as anonymous:
            await anonymous.get(f"{host.web_url}/login", params={"token": "guess"})
    finally:
        await host.stop()
    mode = stat.S_IMODE(os.stat(tmp_path / "home" / "web.token").st_mode)
    assert mode == 0o600
    assert token not in caplog.text and "guess" not in caplog.text


async def test_uploaded_file_names_cannot_leave_the_inbox(host: Host, tmp_path: Path) -> None:
    session, csrf = await logged_in(host)
    form = aiohttp.FormData(quote_fields=False)  # names sent as written, as a hostile client would
    form.add_field("text", "files with tricky names")
    for name in ("../../../../tmp/escaped.txt", "..", "/etc/passwd", ".bashrc", "C:\\win\\x.ini"):
        form.add_field("file", b"payload", filename=name, content_type="text/plain")
    try:
        async with session.post(host.web_url + "/api/chat/messages", data=form,
                                headers={"Origin": host.web_url, "X-CSRF-Token": csrf}) as response:
            assert response.status == 200, await response.text()
    finally:
        await session.close()
    assert not Path("/tmp/escaped.txt").exists()
    saved = sorted(p.name for p in host.settings.sessions_dir.rglob("inbox/*/*"))
    assert saved == sorted(["escaped.txt", "file", "passwd", "bashrc", "x.ini"])
    for path in host.settings.sessions_dir.rglob("inbox/*/*"):
        assert path.resolve().is_relative_to(host.settings.sessions_dir.resolve())


def test_the_host_never_follows_a_link_the_runner_planted_in_the_inbox(tmp_path: Path) -> None:
    folder = SessionFolder(tmp_path / "session")
    end = HostEnd(folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    import hashlib

    subdir = hashlib.sha256(b"m1").hexdigest()[:16]
    (folder.inbox / subdir).symlink_to(outside)
    described = save_attachments(end.tree, "m1", [FileAttachment("x.txt", b"data")])
    assert described[0]["error"] and "path" not in described[0]
    assert list(outside.iterdir()) == []
    (folder.inbox / subdir).unlink()
    (folder.inbox / subdir).mkdir()
    (folder.inbox / subdir / "y.txt").symlink_to(outside / "target")
    described = save_attachments(end.tree, "m1", [FileAttachment("y.txt", b"data")])
    # The planted link is replaced by the file (written beside it and renamed over it), never written through.
    assert not (outside / "target").exists()
    assert not (folder.inbox / subdir / "y.txt").is_symlink() and (folder.inbox / subdir / "y.txt").read_bytes() == b"data"
    end.close()


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd"), ("..", "file"), (".hidden", "hidden"), ("a/b\\c.txt", "c.txt"),
    ("\u202eevil.exe", "evil.exe"), ("a\x00b\n.txt", "ab.txt"), ("x" * 5000 + ".pdf", "x" * 196 + ".pdf"), ("ok name.png", "ok name.png"),
])
def test_safe_file_names(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


SECURITY_HEADERS = ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control")


@pytest.mark.parametrize("path", ["/", "/login?token=wrong", "/no/such/page", "/api/chat/messages", "/hooks/nothing"])
async def test_refusals_and_errors_carry_the_security_headers_and_no_server_version(host: Host, path: str) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(host.web_url + path, allow_redirects=False) as response:
            assert response.status in (401, 403, 404), path
            for name in SECURITY_HEADERS:
                assert name in response.headers, (path, name)
            assert response.headers["Server"] == "NanoClaw"  # not "Python/3.x aiohttp/3.y"
            if response.content_type == "text/html":
                assert "default-src 'none'" in response.headers["Content-Security-Policy"]


async def test_the_favicon_is_served_without_a_login(host: Host) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(host.web_url + "/favicon.ico") as response:
            assert response.status == 200 and response.content_type == "image/x-icon"
            body = await response.read()
            assert body[:4] == b"\x00\x00\x01\x00" and b"PNG" in body  # an icon holding one PNG image
            assert response.headers["Server"] == "NanoClaw"
