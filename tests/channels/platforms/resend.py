"""Resend for the channel contract suite: the fake Resend API, and people mailing the assistant's inbound
address, delivered as Svix-signed `email.received` webhooks.

Every Resend chat is one correspondent (a DM); the sender is always that address. Mail has no bot flag: a
robot's mail carries `Auto-Submitted`, which the channel flags.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.resend_server import ResendFake

API_KEY = "re_FAKE1234_abcdefghijklmnopqrstuvwxyz"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64, as Resend's signing secrets are
INBOUND = "andy@inbound.example.com"
FROM = "Andy <andy@example.com>"


class ResendPlatform(Platform):
    channel_type = "resend"
    group_chat = "alice@example.org"
    dm_chat = "alice@example.org"
    has_groups = False
    inbound = "webhook"  # inbound mail arrives as a signed webhook
    mention_markup = False

    def __init__(self) -> None:
        self.fake = ResendFake(API_KEY, SECRET)

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        return {"RESEND_API_KEY": API_KEY, "RESEND_WEBHOOK_SECRET": SECRET, "RESEND_FROM": FROM,
                "RESEND_INBOUND_ADDRESS": INBOUND, "RESEND_API_URL": self.fake.base_url}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook(self) -> str:
        return self.webhook_base + "/resend"

    async def post(self, payload: object, **kw: object) -> int:
        return await self.fake.post_webhook(self.hook, payload, **kw)  # type: ignore[arg-type]

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        address = chat or self.group_chat
        headers = {"auto-submitted": "auto-replied"} if from_bot else {}
        files = [(file[0], file[1], mimetypes.guess_type(file[0])[0] or "application/octet-stream")] if file else []
        mail = self.fake.receive(f"{sender_name} <{address}>", INBOUND, "Re: our plans", text, headers=headers,
                                 files=files)
        status = await self.post(self.fake.event(mail))
        assert status == 200, status
        return mail.message_id.strip("<>")

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [m for m in self.fake.sent if chat is None or m.chat == chat]

    async def send_malformed(self) -> None:
        mail = self.fake.receive("Mallory <mallory@example.org>", INBOUND, "hi", "forged")
        good = self.fake.event(mail)
        assert await self.post(good, secret=None) == 401  # unsigned
        assert await self.post(good, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY") == 401  # other secret
        assert await self.post(good, headers={"svix-signature": "v1,AAAA"}) == 401
        assert await self.post(good, timestamp=1_600_000_000) == 401  # a captured delivery replayed years later
        for body in (b"{not json", [1, 2], {"type": "email.received"}, {"type": "email.received", "data": {}},
                     {"type": "email.received", "data": {"email_id": 7}}):
            assert await self.post(body) == 400
        assert await self.post({"type": "email.received", "data": {"email_id": "no-such-mail"}}) == 200
        assert await self.post({"type": "email.delivered", "data": {"email_id": mail.id}}) == 200  # not for us

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"  # the text part keeps Markdown; the HTML part has <strong> (test_resend checks it)


PLATFORM = ResendPlatform
