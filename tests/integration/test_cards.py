"""Cards show their final state wherever they are, whoever decided them and wherever."""

from __future__ import annotations

import asyncio
import json
from typing import Callable

import aiohttp

from nanoclaw.db import messaging_groups, users
from nanoclaw.host.app import Host
from nanoclaw.host.cards import EXPIRED, CardBoard
from nanoclaw.protocol.messages import Route
from tests.conftest import fake, wire


async def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_an_approval_decided_on_the_dashboard_closes_its_card_in_the_chat(host: Host) -> None:
    wire(host, "owner-dm", channel="fakerich", is_dm=True)  # the owner's admin chat: buttons and edits
    users.upsert(host.conn, "fakerich", "owner", role="owner")
    wire(host, "club", trigger="always")
    messaging_groups.set_policy(host.conn, messaging_groups.find(host.conn, "fake", "club").id, "ask")
    admin = fake(host, "fakerich")
    await fake(host).say("hi, I'm new", chat="club", sender="newbie")
    [card] = await admin.wait_sent(1)
    assert card.buttons == ("Approve", "Deny") and card.card_id
    token = host.web.login_link.split("token=")[1]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as script:
        async with script.post(f"{host.web_url}/api/dashboard/approvals/{card.card_id}",
                               json={"decision": "approve"}) as response:
            assert response.status == 200, await response.text()
    [(platform_id, text)] = admin.edits
    assert platform_id == card.platform_id
    assert text.startswith("**New sender**") and text.endswith("✅ Approved by the owner on the dashboard")
    # A press of the stale button afterwards is refused, and changes nothing.
    assert await host.answer(card.card_id, "Deny", "owner") is None  # the host says it is not open…
    await wait_until(lambda: any("is not open" in s.text for s in admin.sent))
    assert len(admin.edits) == 1


async def test_a_question_answered_by_a_plain_reply_closes_its_card(host: Host) -> None:
    wire(host, "team", channel="fakerich", trigger="always")
    ch = fake(host, "fakerich")
    ask = json.dumps({"question": "Deploy now?", "options": ["Yes", "No"]})
    await ch.say(f"[mock:tool=ask_user_question:{ask}]", chat="team")
    [card] = await ch.wait_sent(1, timeout=30)
    await ch.say("2", chat="team")  # a reply, not a button
    await wait_until(lambda: bool(ch.edits))
    assert ch.edits == [(card.platform_id, "Deploy now?\n\n✅ Answered: No")]
    await ch.wait_sent(2, timeout=30)  # the agent got the answer
    assert "No" in ch.sent[-1].text


async def test_cards_left_open_by_an_earlier_host_are_closed_as_expired(host: Host) -> None:
    board = CardBoard(host.conn, host.channels)
    ch = fake(host, "fakerich")
    sent = await ch.send(_card(Route("fakerich", "c1")))
    board.posted("q-abcdefgh", Route("fakerich", "c1"), sent.platform_message_id, "Pick one")
    await board.close("q-abcdefgh", EXPIRED)
    await board.close("q-abcdefgh", "✅ Answered: late")  # closes once
    assert ch.edits == [(sent.platform_message_id, f"Pick one\n\n{EXPIRED}")]


def _card(route: Route):  # type: ignore[no-untyped-def]
    from nanoclaw.channels.base import OutgoingMessage

    return OutgoingMessage(route=route, kind="question", text="Pick one", id="c", buttons=("A", "B"), card_id="q-abcdefgh")
