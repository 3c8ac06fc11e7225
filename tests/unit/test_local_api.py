"""The local API socket: JSON lines, clear errors, the connection survives bad requests."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from nanoclaw.client import LocalClient
from nanoclaw.host.api import LocalApi


async def test_errors_are_clear_and_the_connection_keeps_working(tmp_path: Path) -> None:
    api = LocalApi(tmp_path / "s.sock")

    async def echo(request: dict, conn: object) -> dict:
        return {"ok": True, "echo": request.get("x")}

    api.register("echo", echo)
    await api.start()
    try:
        assert stat.S_IMODE((tmp_path / "s.sock").stat().st_mode) == 0o600

        def talk() -> list[dict]:
            with LocalClient(tmp_path / "s.sock") as c:
                c.sock.sendall(b"{not json\n")
                bad = c.read()
                c.sock.sendall(b"[1, 2]\n")
                not_object = c.read()
                unknown = c.request("frobnicate")
                good = c.request("echo", x=42)
            return [bad, not_object, unknown, good]

        bad, not_object, unknown, good = await asyncio.to_thread(talk)
        assert bad == {"ok": False, "error": "malformed request: expected one JSON object per line"}
        assert not_object["ok"] is False
        assert unknown["error"] == "unknown op 'frobnicate'; known: echo"
        assert good == {"ok": True, "echo": 42}
    finally:
        await api.stop()
    assert not (tmp_path / "s.sock").exists()
