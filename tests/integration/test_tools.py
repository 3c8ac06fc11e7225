"""NanoClaw tools end to end (mock provider calling real tools in a real sandbox): questions, files, edits, swarms."""

from __future__ import annotations

import json
import re

import pytest

from nanoclaw.db import agent_groups
from nanoclaw.host.app import Host
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox


def tool(tool_name: str, **args: object) -> str:
    return f"[mock:tool={tool_name}:{json.dumps(args)}]"


async def test_question_answered_with_a_card_button(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    await ch.say(tool("ask_user_question", question="Tea or coffee?", options=["tea", "coffee"]), chat="room")
    cards = await ch.wait_sent(1)
    card = cards[0]
    assert card.kind == "question" and card.buttons == ("tea", "coffee") and card.card_id.startswith("q-")
    assert len(card.card_id) == 10
    assert await ch.click(card.card_id, "coffee") is None
    sent = await ch.wait_sent(2)
    assert sent[1].text == "The person answered: coffee"
    assert await ch.click(card.card_id, "tea") == "That question was already answered or has expired."


async def test_question_answered_by_a_plain_reply_where_there_are_no_buttons(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(tool("ask_user_question", question="Tea or coffee?", options=["tea", "coffee"]))
    sent = await ch.wait_sent(1)
    assert "1) tea\n2) coffee" in sent[0].text and "reply with the number" in sent[0].text
    await ch.say("2")
    sent = await ch.wait_sent(2)
    assert sent[1].text == "The person answered: coffee"


async def test_send_file_from_the_group_folder(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    (host.settings.groups_dir / "main" / "report.txt").write_text("quarterly numbers")
    ch = fake(host, "fakerich")
    await ch.say(tool("send_file", path="report.txt", caption="here it is") + "[mock:silent]", chat="room")
    sent = await ch.wait_sent(1)
    assert sent[0].kind == "file" and sent[0].file is not None
    assert (sent[0].file.name, sent[0].file.data) == ("report.txt", b"quarterly numbers")
    assert sent[0].text == "here it is"


async def test_send_file_outside_the_workspace_is_refused(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    await ch.say(tool("send_file", path="/etc/passwd"), chat="room")
    sent = await ch.wait_sent(1)
    assert "outside /workspace" in sent[0].text and sent[0].kind == "chat"


async def test_bad_tool_arguments_are_reported_to_the_model(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(tool("send_message", txt="typo"))
    sent = await ch.wait_sent(1)
    assert sent[0].text.startswith("Error: missing required argument(s): text")


async def test_edit_message_and_add_reaction_reach_the_platform(host: Host) -> None:
    """The agent's own tools write the rows: send_message gives an id, edit_message and add_reaction use it."""
    wire(host, "room", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    await ch.say(tool("send_message", text="draft"), chat="room", message_id="in-1")
    sent = await ch.wait_sent(2)
    assert sent[0].text == "draft"
    draft_id = re.search(r"message_id (\S+)\)", sent[1].text).group(1)  # type: ignore[union-attr]
    await ch.say(tool("edit_message", message_id=draft_id, text="final") +
                 tool("add_reaction", message_id="in-1", emoji="👍"), chat="room", message_id="in-2")
    assert (await ch.wait_sent(3))[2].text == "Reaction queued."  # delivered after the edit and the reaction
    assert ch.edits == [(sent[0].platform_id, "final")]
    assert ch.reactions == [("in-1", "👍")]
    await ch.say(tool("edit_message", message_id="o-nosuchmsg", text="x"), chat="room")
    assert (await ch.wait_sent(4))[3].text == "Edit queued."  # the row is refused by the host, not sent
    assert ch.edits == [(sent[0].platform_id, "final")]


async def test_send_card_has_buttons_where_the_chat_has_them_and_a_list_elsewhere(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    wire(host, "chat1", trigger="always")
    rich, plain = fake(host, "fakerich"), fake(host)
    card = tool("send_card", text="Ship the release?", title="Release", buttons=["Ship", "Wait"])
    await rich.say(card + "[mock:silent]", chat="room")
    [sent] = await rich.wait_sent(1)
    assert (sent.kind, sent.text, sent.title, sent.buttons) == ("card", "Ship the release?", "Release", ("Ship", "Wait"))
    await plain.say(card + "[mock:silent]", chat="chat1")
    [text] = await plain.wait_sent(1)
    assert text.kind == "chat" and "Ship the release?" in text.text and "1) Ship\n2) Wait" in text.text


async def test_list_destinations_names_the_conversation_and_the_declared_destinations(host: Host) -> None:
    from nanoclaw.db import destinations, messaging_groups

    family = messaging_groups.upsert(host.conn, "fake", "family-chat")
    destinations.add_chat(host.conn, "main", "family", family.id)
    destinations.add_agent(host.conn, "main", "researcher", "main")
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say(tool("list_destinations"), message_id="ask")
    [sent] = await ch.wait_sent(1, timeout=20)
    assert json.loads(sent.text) == {"current_conversation": "fake:chat1", "destinations": ["family", "researcher"]}


async def test_agents_created_from_chat_answer_each_other(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    create = tool("create_agent", id="researcher", name="Researcher", instructions="You find facts.")
    await ch.say(create + "[mock:send=agent:researcher|find the boiling point of water]", message_id="go")
    sent = await ch.wait_sent(2, timeout=20)
    assert agent_groups.get(host.conn, "researcher") is not None
    assert (host.settings.groups_dir / "researcher" / "CLAUDE.md").read_text().endswith("You find facts.\n")
    # The second reply is main answering the researcher's message, in the person's chat.
    assert all(s.route.platform_id == "chat1" for s in sent)
    assert "agent researcher: [mock] Andy received 1 message:" in sent[1].text
    assert "find the boiling point of water" in sent[1].text


async def test_a_non_admin_agent_creates_an_agent_only_with_the_owners_approval(host: Host) -> None:
    from nanoclaw.db import approvals

    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    wire(host, "fam", group="family", trigger="always")
    ch = fake(host)
    await ch.say(tool("create_agent", id="spy", instructions="x"), chat="fam")
    asked = (await ch.wait_sent(1))[0].text
    assert asked.startswith("Asked the owner to approve creating agent spy (oa-")
    assert agent_groups.get(host.conn, "spy") is None  # nothing before the owner says so
    first = asked.split("(")[1].split(")")[0]
    assert "Denied" in await host.gate.decide(first, False, "owner")
    assert agent_groups.get(host.conn, "spy") is None
    await ch.say(tool("create_agent", id="helper", instructions="You help."), chat="fam")
    second = (await ch.wait_sent(2))[1].text.split("(")[1].split(")")[0]
    assert approvals.get(host.conn, second).kind == "create_agent"  # type: ignore[union-attr]
    assert "agent helper created" in await host.gate.decide(second, True, "owner")
    assert agent_groups.get(host.conn, "helper") is not None
    await ch.say(tool("send_to_agent", agent="helper", text="hello helper"), chat="fam")
    assert "Message sent to agent helper" in (await ch.wait_sent(3))[2].text


async def test_turn_that_asked_is_retried_when_the_runner_dies_after_the_answer(host: Host) -> None:
    wire(host, "room", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    ask = tool("ask_user_question", question="Proceed?", options=["yes", "no"])
    await ch.say(ask + "[mock:crash-once]", chat="room", message_id="ask")
    first = (await ch.wait_sent(1))[0]
    assert await ch.click(first.card_id, "yes") is None
    # The runner dies after taking the answer; the turn is retried and asks again.
    second = (await ch.wait_sent(2, timeout=20))[1]
    assert second.kind == "question" and second.card_id != first.card_id
    assert await ch.click(second.card_id, "no") is None
    assert await ch.wait_processed("ask", timeout=20) == "done"
    assert ch.sent[-1].text == "The person answered: no"
