"""Scheduled tasks end to end: due → runner in a real sandbox → reply in the task's chat and thread."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime, timezone

import pytest

from nanoclaw.db import agent_groups, messaging_groups, tasks
from nanoclaw.host.app import Host
from tests.conftest import fake, wire
from tests.integration.hostproc import NANOCLAW, HostProcess

pytestmark = pytest.mark.sandbox


def tool(name: str, **args: object) -> str:
    return f"[mock:tool={name}:{json.dumps(args)}]"


async def test_a_due_task_answers_in_its_chat_and_thread(host: Host) -> None:
    wire(host, "room", channel="fakethreads", trigger="always")
    chat = messaging_groups.find(host.conn, "fakethreads", "room")
    task = host.scheduler.add(agent_group_id="main", prompt="compile the AI news", kind="interval", spec="3600",
                              messaging_group_id=chat.id, thread_id="weekly")
    await host.scheduler.run_now(task.id)
    ch = fake(host, "fakethreads")
    sent = await ch.wait_sent(1)
    assert sent[0].route.thread_id == "weekly" and "compile the AI news" in sent[0].text
    assert "- scheduled task: compile the AI news" in sent[0].text  # the mock names the sender
    for _ in range(100):
        if tasks.runs(host.conn, task.id)[0]["status"] == "done":
            break
        await asyncio.sleep(0.05)
    run = tasks.runs(host.conn, task.id)[0]
    assert run["status"] == "done"
    assert "compile the AI news" in tasks.get(host.conn, task.id).last_result


async def test_agents_schedule_pause_and_cancel_their_tasks(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(tool("schedule_task", prompt="water the plants", cron="0 8 * * *", timezone="Europe/Berlin"))
    sent = await ch.wait_sent(1)
    assert sent[0].text.startswith("Scheduled t-") and "Europe/Berlin" in sent[0].text
    task_id = sent[0].text.split()[1]
    assert tasks.get(host.conn, task_id).messaging_group_id == messaging_groups.find(host.conn, "fake", "chat1").id
    await ch.say(tool("list_tasks"))
    listed = json.loads((await ch.wait_sent(2))[1].text)
    assert [t["id"] for t in listed] == [task_id] and listed[0]["prompt"] == "water the plants"
    await ch.say(tool("pause_task", task_id=task_id))
    assert (await ch.wait_sent(3))[2].text == f"Paused {task_id}"
    await ch.say(tool("cancel_task", task_id=task_id))
    assert (await ch.wait_sent(4))[3].text == f"Cancelled {task_id}"
    assert tasks.get(host.conn, task_id).status == "cancelled"
    await ch.say(tool("schedule_task", prompt="x", cron="whenever"))
    assert "not a cron expression" in (await ch.wait_sent(5))[4].text


async def test_agents_update_and_resume_their_tasks(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(tool("schedule_task", prompt="water the plants", interval_seconds=3600))
    task_id = (await ch.wait_sent(1))[0].text.split()[1]
    await ch.say(tool("update_task", task_id=task_id, prompt="water the cactus", cron="30 7 * * *", timezone="UTC"))
    assert (await ch.wait_sent(2))[1].text.startswith(f"Updated {task_id}; next run ")
    task = tasks.get(host.conn, task_id)
    assert (task.prompt, task.kind, task.spec, task.timezone) == ("water the cactus", "cron", "30 7 * * *", "UTC")
    await ch.say(tool("pause_task", task_id=task_id))
    await ch.wait_sent(3)
    assert tasks.get(host.conn, task_id).status == "paused"
    await ch.say(tool("resume_task", task_id=task_id))
    assert (await ch.wait_sent(4))[3].text.startswith(f"Resumed {task_id}; next run ")
    assert tasks.get(host.conn, task_id).status == "active"
    await ch.say(tool("update_task", task_id=task_id, cron="whenever"))
    assert "not a cron expression" in (await ch.wait_sent(5))[4].text
    assert tasks.get(host.conn, task_id).spec == "30 7 * * *"


async def test_groups_cannot_touch_each_others_tasks_but_the_admin_can(host: Host) -> None:
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    wire(host, "fam", group="family", trigger="always")
    wire(host, "chat1", trigger="always")
    mine = host.scheduler.add(agent_group_id="main", prompt="admin's task", kind="interval", spec="600")
    ch = fake(host)
    await ch.say(tool("pause_task", task_id=mine.id), chat="fam")
    assert "belongs to agent group main" in (await ch.wait_sent(1))[0].text
    await ch.say(tool("list_all_tasks"), chat="fam")
    assert (await ch.wait_sent(2))[1].text == "Error: no tool list_all_tasks"
    theirs = host.scheduler.add(agent_group_id="family", prompt="family task", kind="interval", spec="600")
    await ch.say(tool("list_all_tasks"), chat="chat1")
    listed = json.loads((await ch.wait_sent(3))[2].text)
    assert {t["id"] for t in listed} == {mine.id, theirs.id}
    await ch.say(tool("pause_task", task_id=theirs.id), chat="chat1")
    assert (await ch.wait_sent(4))[3].text == f"Paused {theirs.id}"


@pytest.mark.slow
def test_cli_adds_lists_and_runs_a_task(tmp_path) -> None:
    host = HostProcess(tmp_path / "home").start()
    try:
        env = host.env
        run = lambda *args: subprocess.run([NANOCLAW, *args], env=env, capture_output=True, text=True, timeout=30)  # noqa: E731
        added = run("tasks", "add", "--group", "main", "--cron", "0 9 * * *", "--prompt", "say hi")
        assert added.returncode == 0, added.stderr
        task_id = added.stdout.split()[1]
        listed = run("tasks", "list")
        assert task_id in listed.stdout and "say hi" in listed.stdout and "next 20" in listed.stdout
        bad = run("tasks", "add", "--cron", "nope", "--prompt", "x")
        assert bad.returncode == 1 and "not a cron expression" in bad.stderr
        with host.client(timeout=20) as c:
            c.request("subscribe")
            assert run("tasks", "run-now", task_id).returncode == 0
            reply = next(e for e in c.events() if e.get("event") == "message")
        assert "say hi" in reply["text"]
    finally:
        host.stop()


async def test_a_task_due_soon_has_its_runner_started_ahead(host: Host) -> None:
    wire(host, "room", trigger="always")
    chat = messaging_groups.find(host.conn, "fake", "room")
    assert host.settings.task_prewarm >= 10
    when = datetime.fromtimestamp(time.time() + 6, timezone.utc).isoformat(timespec="seconds")
    task = host.scheduler.add(agent_group_id="main", prompt="morning summary", kind="once", spec=when,
                              timezone="UTC", messaging_group_id=chat.id)
    due = tasks.get(host.conn, task.id).next_run
    assert due is not None
    # Within the lead time its session's runner starts, before the task is due and with nothing to do yet.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4
    while not host.supervisor.live:
        assert loop.time() < deadline, "no runner was started ahead of the task"
        await asyncio.sleep(0.02)
    assert host.scheduler.clock.now() < due and tasks.runs(host.conn, task.id) == []
    (session_id, runner), = host.supervisor.live.items()
    assert tasks.get(host.conn, task.id).session_id in (None, session_id)
    # When due, the task's turn runs on that runner: no second start.
    sent = await fake(host).wait_sent(1, timeout=15)
    assert "morning summary" in sent[0].text
    assert host.supervisor.live[session_id] is runner and host.supervisor.starts == 1
