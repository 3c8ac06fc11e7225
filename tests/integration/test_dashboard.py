"""The dashboard's JSON API on a real host: what it shows, the levers it offers, and clear refusals."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from nanoclaw import envfile
from nanoclaw.config import credentials_path
from nanoclaw.db import approvals
from nanoclaw.host.app import Host
from tests.conftest import make_settings


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[tuple[Host, aiohttp.ClientSession]]:
    host = Host(make_settings(tmp_path / "home"))
    await host.start()
    token = host.web.login_link.split("token=")[1]
    session = aiohttp.ClientSession(base_url=host.web_url, headers={"Authorization": f"Bearer {token}"})
    try:
        yield host, session
    finally:
        await session.close()
        await host.stop()


async def test_overview_lists_groups_chats_sessions_and_no_secret_values(
    owner: tuple[Host, aiohttp.ClientSession], private_config_dir: Path
) -> None:
    host, api = owner
    from nanoclaw.vault.store import SecretRule

    host.vault.add(SecretRule("weather", "api.weather.test"), "sk-dashboard-canary")
    async with api.get("/api/dashboard") as r:
        body = await r.text()
        data = await r.json()
    assert r.status == 200 and "sk-dashboard-canary" not in body
    assert [g["id"] for g in data["groups"]] == ["main"]
    assert {c["chat"] for c in data["chats"]} >= {"terminal:local", "web:owner"}
    assert data["secrets"] == [{"name": "weather", "host": "api.weather.test", "header": "Authorization"}]
    assert data["onboarding"]["needs_model_key"] is True and data["status"]["provider"] == "mock"


async def test_memory_is_read_and_written_whole_and_unknown_groups_are_refused(
    owner: tuple[Host, aiohttp.ClientSession],
) -> None:
    host, api = owner
    async with api.put("/api/dashboard/memory/main", json={"text": "# main\nlikes tea\n"}) as r:
        assert r.status == 200
    assert (host.settings.groups_dir / "main" / "CLAUDE.md").read_text() == "# main\nlikes tea\n"
    async with api.get("/api/dashboard/memory/main") as r:
        assert (await r.json())["text"] == "# main\nlikes tea\n"
    for bad in ("nosuch", "..%2F..%2Fetc"):
        async with api.get(f"/api/dashboard/memory/{bad}") as r:
            assert r.status == 404
    async with api.put("/api/dashboard/memory/main", json={"text": "x" * 600_000}) as r:
        assert r.status == 400 and "KB" in (await r.json())["error"]


async def test_levers_refuse_bad_input_with_a_sentence(owner: tuple[Host, aiohttp.ClientSession]) -> None:
    host, api = owner
    wiring_id = host.conn.execute("SELECT id FROM wirings LIMIT 1").fetchone()[0]
    async with api.post(f"/api/dashboard/wirings/{wiring_id}", json={"trigger": "sometimes"}) as r:
        assert r.status == 400 and "trigger must be one of" in (await r.json())["error"]
    async with api.post(f"/api/dashboard/wirings/{wiring_id}", json={"trigger": "prefix"}) as r:
        assert r.status == 400 and "prefix" in (await r.json())["error"]
    async with api.post("/api/dashboard/wirings/99999", json={"trigger": "always"}) as r:
        assert r.status == 404
    async with api.post("/api/dashboard/tasks/t-nope/explode") as r:
        assert r.status == 404
    async with api.post("/api/dashboard/approvals/oa-12345678", json={"decision": "maybe"}) as r:
        assert r.status == 400
    async with api.post("/api/dashboard/onboarding", data=b"{not json",
                        headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400


async def test_approvals_are_decided_from_the_dashboard(owner: tuple[Host, aiohttp.ClientSession]) -> None:
    host, api = owner
    approval = approvals.create(host.conn, "create_agent", "family", {"group": "family"}, 600)
    async with api.get("/api/dashboard") as r:
        assert [a["id"] for a in (await r.json())["approvals"]] == [approval.id]
    async with api.post(f"/api/dashboard/approvals/{approval.id}", json={"decision": "deny"}) as r:
        assert r.status == 200
    assert approvals.get(host.conn, approval.id).status == "denied"  # type: ignore[union-attr]


async def test_onboarding_saves_the_name_and_a_private_model_key(
    owner: tuple[Host, aiohttp.ClientSession],
) -> None:
    host, api = owner
    async with api.post("/api/dashboard/onboarding", json={"assistant_name": "Bob!"}) as r:
        assert r.status == 400
    async with api.post("/api/dashboard/onboarding",
                        json={"assistant_name": "Bob", "anthropic_api_key": "sk-ant-onboarding-canary"}) as r:
        assert r.status == 200 and (await r.json())["restart_needed"] is True
    assert envfile.read(host.settings.config_file)["NANOCLAW_ASSISTANT_NAME"] == "Bob"
    assert envfile.read(credentials_path())["ANTHROPIC_API_KEY"] == "sk-ant-onboarding-canary"
    assert stat.S_IMODE(credentials_path().stat().st_mode) == 0o600
    assert "sk-ant-onboarding-canary" not in host.settings.config_file.read_text()
