"""The admin channel: admin-only tools, host commands, and sender policy with the owner's approval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nanoclaw.db import agent_groups, approvals, messaging_groups, users
from nanoclaw.host.app import Host
from nanoclaw.protocol.runner_end import RunnerEnd
from nanoclaw.protocol.messages import Route
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox


def tool(tool_name: str, **args: object) -> str:
    return f"[mock:tool={tool_name}:{json.dumps(args)}]"


async def test_admin_joins_a_chat_from_its_own_chat(host: Host) -> None:
    wire(host, "admin-dm", is_dm=True)
    ch = fake(host)
    stranger = await ch.say("@Andy anyone here?", chat="family-chat")
    assert not stranger.triggered
    [card] = await ch.wait_sent(1)  # the owner is asked about the new chat in the admin chat
    assert card.route.platform_id == "admin-dm" and "New chat" in card.text and "anyone here?" in card.text
    await ch.say(tool("list_groups"), chat="admin-dm", is_dm=True)
    listed = json.loads((await ch.wait_sent(2))[1].text)
    family = next(c for c in listed["chats"] if c["chat"] == "fake:family-chat")
    assert family["wired_to"] == []
    await ch.say(tool("wire_group", chat="fake:family-chat", trigger="mention"), chat="admin-dm", is_dm=True)
    assert (await ch.wait_sent(3))[2].text == "Wired fake:family-chat to main (trigger mention, sessions per-thread)"
    sent = await ch.wait_sent(4)  # what the chat said while unwired is answered once it is wired
    assert sent[3].route.platform_id == "family-chat" and "anyone here?" in sent[3].text
    await ch.say("@Andy hello family", chat="family-chat")
    sent = await ch.wait_sent(5)
    assert sent[4].route.platform_id == "family-chat" and "hello family" in sent[4].text


async def test_non_admin_groups_get_no_admin_tools_and_forged_calls_are_refused(host: Host) -> None:
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    wire(host, "fam", group="family", trigger="always")
    ch = fake(host)
    await ch.say(tool("wire_group", chat="fake:fam", agent_group="main"), chat="fam")
    assert (await ch.wait_sent(1))[0].text == "Error: no tool wire_group"
    session_id = host.conn.execute("SELECT id FROM sessions WHERE agent_group_id = 'family'").fetchone()[0]
    forger = RunnerEnd(host.sessions.folder(host.sessions.get(session_id)), doorbell=False)
    with forger.transaction():
        forger.write(kind="system", text=None, payload={"action": "wire_group", "chat": "fake:fam",
                                                          "agent_group": "main", "request_id": "r-forged"})
    forger.close()
    await host.delivery.drain(session_id)
    end = host.sessions.end(session_id)
    assert end.conn.execute("SELECT error FROM delivered WHERE status='refused'").fetchone()[0] == \
        "wire_group is only for the admin agent group"
    fam = messaging_groups.find(host.conn, "fake", "fam")
    assert [w[0] for w in host.conn.execute("SELECT agent_group_id FROM wirings WHERE messaging_group_id=?", (fam.id,))] == ["family"]


async def test_help_for_everyone_status_for_the_owner(host: Host) -> None:
    wire(host, "group", trigger="mention")
    ch = fake(host)
    helped = await ch.say("/help", chat="group", sender="guest")
    assert helped.accepted and "/status" in (helped.reply or "")
    assert "/clear" in (await ch.wait_sent(1))[0].text
    refused = await ch.say("/status", chat="group", sender="guest")
    assert not refused.accepted and "Only the owner or an admin" in (refused.error or "")


async def wait_until(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


def web_chat(host: Host) -> list[dict]:
    """What the owner sees in the web chat (the admin chat of a fresh install)."""
    return host.channels["web"].store.history(None)  # type: ignore[attr-defined]


async def test_unknown_sender_is_held_until_the_owner_approves(host: Host) -> None:
    wire(host, "club", trigger="always")
    messaging_groups.set_policy(host.conn, messaging_groups.find(host.conn, "fake", "club").id, "ask")
    ch = fake(host)
    await ch.say("hi, I'm new", chat="club", sender="newbie")
    await ch.say("still there?", chat="club", sender="newbie")
    await wait_until(lambda: any("New sender" in (m["title"] or "") + m["text"] for m in web_chat(host)))
    card = next(m for m in web_chat(host) if "New sender" in (m["title"] or "") + m["text"])
    assert "/approve oa-" in card["text"] and card["buttons"] == ["Approve", "Deny"]
    await asyncio.sleep(0.3)
    assert ch.sent == []  # nothing reached the agent yet
    approval_id = host.conn.execute("SELECT id FROM approvals").fetchone()[0]
    assert len(approval_id) == 11 and card["card_id"] == approval_id
    assert await host.answer(approval_id, "Approve", "a-guest") == "Only the owner or an admin may decide this."
    await host.answer(approval_id, "Approve", "owner")
    sent = await ch.wait_sent(1)
    assert "hi, I'm new" in sent[-1].text and "still there?" in "".join(s.text for s in ch.sent)
    await wait_until(lambda: any("Approved" in m["text"] for m in web_chat(host)))
    assert await host.answer(approval_id, "Deny", "owner") is None
    await wait_until(lambda: any("is not open" in m["text"] for m in web_chat(host)))


async def test_the_owner_is_asked_in_the_latest_admin_chat_and_the_terminal_last(host: Host) -> None:
    assert host.gate.admin_route() == Route("web", "owner")  # fresh install: terminal and web chat
    wire(host, "owner-dm", is_dm=True)  # the owner wires a chat app's DM to main
    assert host.gate.admin_route() == Route("fake", "owner-dm")
    host.conn.execute("DELETE FROM wirings WHERE agent_group_id = 'main' AND messaging_group_id IN "
                      "(SELECT id FROM messaging_groups WHERE channel_type != 'terminal')")
    assert host.gate.admin_route() == Route("terminal", "local")


async def test_denied_and_unlisted_senders_never_reach_the_agent(host: Host) -> None:
    wire(host, "club", trigger="always")
    wire(host, "vip", trigger="always")
    club = messaging_groups.find(host.conn, "fake", "club")
    vip = messaging_groups.find(host.conn, "fake", "vip")
    messaging_groups.set_policy(host.conn, club.id, "ask")
    messaging_groups.set_policy(host.conn, vip.id, "allowlist")
    friend = users.upsert(host.conn, "fake", "friend")
    users.allow(host.conn, vip.id, friend.id)
    ch = fake(host)
    await ch.say("let me in", chat="club", sender="troll")
    approval = host.conn.execute("SELECT id FROM approvals").fetchone()[0]
    await host.answer(approval, "Deny", "owner")
    await ch.say("please?", chat="club", sender="troll")
    await ch.say("hello vip", chat="vip", sender="crasher")
    await ch.say("hello from a friend", chat="vip", sender="friend")
    sent = await ch.wait_sent(1)
    await asyncio.sleep(0.5)
    assert len(ch.sent) == 1 and "hello from a friend" in sent[0].text
    assert approvals.get(host.conn, approval).status == "denied"
    assert host.conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 1


async def test_admin_gives_a_group_a_folder_from_chat_within_the_allow_list(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    photos, secrets = tmp_path / "owner" / "photos", tmp_path / "owner" / ".ssh"
    photos.mkdir(parents=True)
    secrets.mkdir()
    (photos / "beach.txt").write_text("a day at the beach")
    host.settings.mount_allowlist.parent.mkdir(parents=True, exist_ok=True)
    host.settings.mount_allowlist.write_text(json.dumps({"allowed": [str(tmp_path / "owner")]}))
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    wire(host, "admin-dm", is_dm=True)
    users.upsert(host.conn, "fake", "alice", role="owner")  # the admin chat is the owner's: notes go there
    wire(host, "fam", group="family", trigger="always")
    ch = fake(host)

    await ch.say(tool("add_mount", agent_group="family", path=str(secrets)), chat="admin-dm", is_dm=True)
    sent = await ch.wait_sent(2)  # the agent's answer, and the owner's note with the reason
    told_agent = next(s.text for s in sent if s.text.startswith("Refused"))
    assert "mount rules do not allow this folder" in told_agent and ".ssh" not in told_agent
    assert any("'.ssh' is blocked" in s.text and not s.text.startswith("Refused") for s in sent)
    await ch.say(tool("add_mount", agent_group="family", path=str(photos), writable=True), chat="admin-dm", is_dm=True)
    sent = await ch.wait_sent(4)
    assert any("may only be mounted read-only" in s.text and s.text.startswith("Refused") for s in sent[2:])
    await ch.say(tool("add_mount", agent_group="family", path=str(photos)), chat="admin-dm", is_dm=True)
    assert (await ch.wait_sent(5))[4].text.endswith("mounted read-only at /workspace/extra/photos for family "
                                                    "(from its next start).")

    await ch.say("[mock:read=/workspace/extra/photos/beach.txt]", chat="fam")
    assert "a day at the beach" in (await ch.wait_sent(6))[5].text
    await ch.say(tool("add_mount", agent_group="family", path=str(tmp_path / "owner")), chat="fam")
    assert (await ch.wait_sent(7))[6].text == "Error: no tool add_mount"
    await ch.say(tool("remove_mount", agent_group="family", name="photos"), chat="fam")
    assert (await ch.wait_sent(8))[7].text == "Error: no tool remove_mount"

    await ch.say(tool("remove_mount", agent_group="family", name="photos"), chat="admin-dm", is_dm=True)
    assert (await ch.wait_sent(9))[8].text == "Removed /workspace/extra/photos from family (from its next start)."
    await ch.say(tool("remove_mount", agent_group="family", name="photos"), chat="admin-dm", is_dm=True)
    assert (await ch.wait_sent(10))[9].text == "Refused: family has no mount named 'photos'"
    family = host.conn.execute("SELECT id FROM sessions WHERE agent_group_id = 'family'").fetchone()[0]
    host.supervisor.retire_group("family")  # the runner exits when idle; its next start has no extra/photos
    await wait_until(lambda: family not in host.supervisor.live)
    await ch.say("[mock:read=/workspace/extra/photos/beach.txt]", chat="fam")
    assert (await ch.wait_sent(11))[10].text == "Error: No such file or directory"


async def test_mount_refusals_tell_the_agent_no_file_names(host: Host, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent probing the owner's folders learns nothing of what is in them, or whether they exist."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    owner = tmp_path / "owner"
    (owner / "projects" / ".aws").mkdir(parents=True)
    (owner / "projects" / ".aws" / "credentials").write_text("x")
    host.settings.mount_allowlist.parent.mkdir(parents=True, exist_ok=True)
    host.settings.mount_allowlist.write_text(json.dumps({"allowed": [str(owner)]}))
    wire(host, "admin-dm", is_dm=True)
    users.upsert(host.conn, "fake", "alice", role="owner")  # the admin chat is the owner's: notes go there
    ch = fake(host)
    probes = [owner / "projects", owner / "nothing-here", tmp_path / "elsewhere", owner / "projects" / ".aws"]
    for i, path in enumerate(probes):
        await ch.say(tool("add_mount", agent_group="main", path=str(path)), chat="admin-dm", is_dm=True)
        await ch.wait_sent(2 * (i + 1))
    answers = [s.text for s in ch.sent if s.text.startswith("Refused")]
    assert len(answers) == len(probes) and len(set(a.replace(str(p), "P") for a, p in zip(answers, probes))) == 1
    for answer in answers:
        assert ".aws" not in answer and "credentials" not in answer and "no such" not in answer
    notes = [s.text for s in ch.sent if not s.text.startswith("Refused")]
    assert any(".aws" in n for n in notes) and any("no such folder" in n for n in notes)
