"""Linear for the channel contract suite: the fake GraphQL API, and a person commenting through signed webhooks."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.linear_server import LinearFake, encode, post_webhook, sign

API_KEY = "lin_api_FAKE0000000000000000000000000000000000"
SECRET = "lin_wh_fake_signing_secret_for_tests"
TEAM = "7c2a4a6e-0d3f-4f1e-9a57-0f2b7e1c9a11"
OTHER_TEAM = "0b6d6f0c-3a5e-4f44-8f0e-5d4b2e5a7c22"
ISSUE = "a5e1f0c2-6f6b-4c8e-9d0a-1b2c3d4e5f60"  # where a person writes when the test names no thread
THREAD = "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


class LinearPlatform(Platform):
    channel_type = "linear"
    group_chat = TEAM
    dm_chat = OTHER_TEAM  # unused: Linear has no direct messages
    thread_root = THREAD
    has_dms = False
    inbound = "webhook"
    mention_markup = False  # "@name" in a comment is plain text

    def __init__(self) -> None:
        self.fake = LinearFake(API_KEY)

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        if not self.fake.teams:
            self.fake.add_team(TEAM, "ENG", "Engineering")
            self.fake.add_team(OTHER_TEAM, "OPS", "Operations")
            self.fake.add_issue(TEAM, "Crash on start", issue_id=ISSUE)
            self.fake.add_issue(TEAM, "Slow search", issue_id=THREAD)
        return {"LINEAR_API_KEY": API_KEY, "LINEAR_WEBHOOK_SECRET": SECRET, "LINEAR_API_URL": self.fake.api_url,
                "LINEAR_UPLOADS_URL": self.fake.uploads_url}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook_url(self) -> str:
        return self.webhook_base + "/linear"

    async def deliver(self, payload: object, *, secret: str | None = SECRET, signature: str | None = None,
                      kind: str = "Comment") -> int:
        """Post one webhook signed with `secret` (None: unsigned), or with an explicit `signature` header."""
        body = payload if isinstance(payload, bytes) else encode(payload)
        header = signature if signature is not None else (sign(secret, body) if secret is not None else None)
        return await post_webhook(self.hook_url, kind, body, header)

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        self.fake.add_user(sender, sender_name)
        body = f"@{self.fake.bot['displayName']} {text}" if mention else text
        if file is not None:
            url = self.fake.upload_from_person(file[0], file[1], mimetypes.guess_type(file[0])[0] or "text/plain")
            body += f"\n\n[{file[0]}]({url})"
        issue = thread or ISSUE
        if chat is not None and chat != TEAM:
            issue = self.fake.add_issue(chat, "Elsewhere")["id"]
        comment = self.fake.add_comment(issue, body, sender, bot=from_bot)
        status = await self.deliver(self.fake.comment_event(comment))
        assert status == 200, f"webhook answered {status}"
        return comment.id

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [m for m in self.fake.sent if chat is None or m.chat == chat]

    async def reactions_on(self, message_id: str) -> list[str]:
        comment = self.fake.all_comments.get(message_id)
        return list(comment.reactions) if comment else []

    async def send_malformed(self) -> None:
        comment = self.fake.add_comment(ISSUE, "forged", "mallory")
        good = self.fake.comment_event(comment)
        for payload in (b"{not json", [1, 2, 3], {**good, "webhookTimestamp": "now"},
                        {k: v for k, v in good.items() if k != "webhookTimestamp"}):
            assert await self.deliver(payload) in (400, 401)
        for data in ("oops", {**good["data"], "issue": None, "issueId": None},
                     {**good["data"], "id": 7}, {**good["data"], "body": None}):
            assert await self.deliver({**good, "data": data}) == 400
        assert await self.deliver(good, secret=None) == 401
        assert await self.deliver(good, secret="wrong secret") == 401
        assert await self.deliver(good, signature="sha256=" + sign(SECRET, encode(good))) == 401
        stale = self.fake.comment_event(comment) | {"webhookTimestamp": good["webhookTimestamp"] - 120_000}
        assert await self.deliver(stale) == 401  # correctly signed, but two minutes old: a replay

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"


PLATFORM = LinearPlatform
