"""GitHub for the channel contract suite: the fake REST API, and a person commenting through signed webhooks."""

from __future__ import annotations

from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.github_server import GitHubFake, encode, post_webhook, sign

TOKEN = "github_pat_11FAKE0000000000000000_fakefakefakefakefake"
SECRET = "webhook-secret-for-tests"
BOT_LOGIN = "andy-bot"
DEFAULT_ISSUE = 1  # where a person writes when the test names no thread
EMOJI = {"+1": "👍", "-1": "👎", "laugh": "😄", "confused": "😕", "heart": "❤️", "hooray": "🎉", "rocket": "🚀",
         "eyes": "👀"}


class GitHubPlatform(Platform):
    channel_type = "github"
    group_chat = "octo-org/hello-world"
    dm_chat = "octo-org/dotfiles"  # unused: GitHub has no DMs
    thread_root = "7"
    has_dms = False
    inbound = "webhook"
    mention_markup = False  # "@login" in a comment is plain text

    def __init__(self) -> None:
        self.fake = GitHubFake(TOKEN, BOT_LOGIN, (self.group_chat, self.dm_chat))

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        for number in (DEFAULT_ISSUE, int(self.thread_root or 7)):
            self.fake.ensure_issue(self.group_chat, number)
        return {"GITHUB_TOKEN": TOKEN, "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": self.fake.base_url}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook_url(self) -> str:
        return self.webhook_base + "/github"

    async def deliver(self, event: str, payload: object, *, secret: str | None = SECRET,
                      signature: str | None = None) -> int:
        """Post one webhook signed with `secret` (None: unsigned), or with an explicit `signature` header."""
        body = encode(payload) if not isinstance(payload, bytes) else payload
        header = signature if signature is not None else (sign(secret, body) if secret is not None else None)
        return await post_webhook(self.hook_url, event, body, header)

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        login = f"{sender}[bot]" if from_bot else sender
        body = f"@{BOT_LOGIN} {text}" if mention else text
        if file is not None:  # GitHub stores uploads itself; the comment carries a link
            body += f"\n\n[{file[0]}](https://github.com/user-attachments/files/1/{file[0]})"
        number = int(thread) if thread else DEFAULT_ISSUE
        comment_id, payload = self.fake.comment_event(chat or self.group_chat, number, body, login, bot=from_bot)
        status = await self.deliver("issue_comment", payload)
        assert status == 200, f"webhook answered {status}"
        return comment_id

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [m for m in self.fake.sent if chat is None or m.chat == chat]

    async def reactions_on(self, message_id: str) -> list[str]:
        return [EMOJI[r] for r in self.fake.reactions_on(message_id)]

    async def send_malformed(self) -> None:
        _, good = self.fake.comment_event(self.group_chat, DEFAULT_ISSUE, "forged", "mallory")
        bodies: list[tuple[str, object]] = [
            ("issue_comment", b"{not json"),
            ("issue_comment", [1, 2, 3]),
            ("issue_comment", {"action": "created", "comment": "oops", "repository": {"full_name": self.group_chat}}),
            ("issue_comment", {**good, "issue": {"number": "seven"}}),
            ("issues", {"action": "opened", "repository": {"full_name": self.group_chat}}),
            ("pull_request_review_comment", {**good, "pull_request": None}),
        ]
        for event, payload in bodies:
            assert await self.deliver(event, payload) == 400
        assert await self.deliver("issue_comment", good, secret=None) == 401
        assert await self.deliver("issue_comment", good, secret="wrong secret") == 401
        assert await self.deliver("issue_comment", good, signature="sha1=0123") == 401

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"


PLATFORM = GitHubPlatform
