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
    [secret] = data["secrets"]
    assert (secret["name"], secret["host"], secret["header"]) == ("weather", "api.weather.test", "Authorization")
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


async def test_tasks_are_added_and_changed_with_clear_refusals(owner: tuple[Host, aiohttp.ClientSession]) -> None:
    host, api = owner
    async with api.post("/api/dashboard/tasks", json={"prompt": "water the plants", "kind": "cron",
                                                      "spec": "0 7 * * *", "timezone": "UTC"}) as r:
        assert r.status == 200, await r.text()
        task = (await r.json())["task"]
    async with api.patch(f"/api/dashboard/tasks/{task['id']}", json={"kind": "interval", "spec": "3600"}) as r:
        assert r.status == 200 and (await r.json())["task"]["schedule"] != task["schedule"]
    async with api.post("/api/dashboard/tasks", json={"prompt": "x", "kind": "cron", "spec": "not cron"}) as r:
        assert r.status == 400 and "cron" in (await r.json())["error"].lower()
    async with api.post("/api/dashboard/tasks", json={"prompt": "x", "kind": "once", "spec": "tomorrow",
                                                      "group": "nosuch"}) as r:
        assert r.status == 400 and "nosuch" in (await r.json())["error"]
    async with api.get("/api/dashboard") as r:
        [listed] = (await r.json())["tasks"]
    assert listed["prompt"] == "water the plants" and listed["next_run_at"] > 0


async def test_secrets_are_added_rotated_and_removed_and_never_shown_back(
    owner: tuple[Host, aiohttp.ClientSession], private_config_dir: Path,
) -> None:
    host, api = owner
    async with api.post("/api/dashboard/secrets", json={"name": "weather", "host": "api.weather.test",
                                                        "header": "X-Api-Key", "format": "{value}",
                                                        "value": "sk-first-canary"}) as r:
        assert r.status == 200 and "sk-first-canary" not in await r.text()
    assert host.vault.for_request("api.weather.test", "GET", "/", "main") == [("X-Api-Key", "sk-first-canary")]
    async with api.put("/api/dashboard/secrets/weather", json={"value": "sk-second-canary"}) as r:
        assert r.status == 200
    assert host.vault.for_request("api.weather.test", "GET", "/", "main") == [("X-Api-Key", "sk-second-canary")]
    async with api.get("/api/dashboard") as r:
        body = await r.text()
    assert "canary" not in body and "weather" in body
    async with api.delete("/api/dashboard/secrets/weather") as r:
        assert r.status == 200
    async with api.delete("/api/dashboard/secrets/weather") as r:
        assert r.status == 404
    async with api.post("/api/dashboard/secrets", json={"name": "bad name!", "host": "x", "value": "v"}) as r:
        assert r.status == 400


async def test_an_unwired_chat_is_wired_and_unwired(owner: tuple[Host, aiohttp.ClientSession]) -> None:
    from nanoclaw.db import messaging_groups, wirings

    host, api = owner
    chat = messaging_groups.upsert(host.conn, "web", "elsewhere", name="Elsewhere")
    async with api.post("/api/dashboard/wirings", json={"chat_id": chat.id, "group": "main", "trigger": "prefix",
                                                        "trigger_value": "!ai"}) as r:
        assert r.status == 200, await r.text()
        wiring_id = (await r.json())["wiring"]
    [wired] = wirings.for_messaging_group(host.conn, chat.id)
    assert (wired.agent_group_id, wired.trigger, wired.trigger_value) == ("main", "prefix", "!ai")
    async with api.post("/api/dashboard/wirings", json={"chat_id": chat.id, "group": "main", "trigger": "prefix"}) as r:
        assert r.status == 400 and "prefix" in (await r.json())["error"]
    async with api.delete(f"/api/dashboard/wirings/{wiring_id}") as r:
        assert r.status == 200
    assert wirings.for_messaging_group(host.conn, chat.id) == []


async def test_a_session_transcript_and_live_updates_over_the_chat_socket(
    owner: tuple[Host, aiohttp.ClientSession],
) -> None:
    host, api = owner
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as page:
        async with page.get(host.web.login_link) as r:
            assert r.status == 200
        ws = await page.ws_connect(f"{host.web_url}/api/chat/events", headers={"Origin": host.web_url})
        await ws.send_json({"type": "subscribe", "topics": ["dashboard"]})
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "dashboard" and first["data"]["status"]["provider"] == "mock"
        csrf = next(c.value for c in page.cookie_jar if c.key == "nanoclaw_csrf")
        async with page.post(f"{host.web_url}/api/chat/messages", json={"text": "hello transcript"},
                             headers={"X-CSRF-Token": csrf, "Origin": host.web_url}) as r:
            assert r.status == 200
        # The runner starting is pushed to the page, no polling.
        while True:
            event = await ws.receive_json(timeout=30)
            if event["type"] == "dashboard" and any(s["runner_pid"] for s in event["data"]["status"]["sessions"]):
                break
        session = next(s for s in event["data"]["status"]["sessions"] if s["chat"] == "web:owner")
        await ws.close()
    for _ in range(100):
        async with api.get(f"/api/dashboard/sessions/{session['id']}/transcript") as r:
            rows = (await r.json())["rows"]
        if any(row["side"] == "out" for row in rows):
            break
        await __import__("asyncio").sleep(0.1)
    assert rows[0]["side"] == "in" and rows[0]["text"] == "hello transcript"
    assert rows[-1]["side"] == "out" and "hello transcript" in rows[-1]["text"]
    async with api.get("/api/dashboard/sessions/s-nosuch/transcript") as r:
        assert r.status == 404
