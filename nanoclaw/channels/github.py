"""The GitHub channel: conversations on issues and pull requests.

Owns the webhook endpoint `/hooks/github` (signature check, event parsing) and
the REST calls that answer there (comments, edits, reactions). A chat is a
repository (`owner/repo`); a thread is an issue or pull request number, so each
issue or PR gets its own session. GitHub has no direct messages.

Outbound uses httpx directly: PyGithub is synchronous only, and githubkit pulls
in large generated schema packages for the four endpoints we call.

GitHub does not retry a webhook that failed because the host was down, so the
channel keeps, per repository, when the newest comment it passed on was written
(`state/github-seen.json`) and at start fetches the issue comments written since.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from nanoclaw.channels.base import Capabilities, Channel, Health, InboundEvent, OutgoingMessage, SendResult, render_text
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, title_from
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_URL = "https://api.github.com"
MAX_BODY = 65536  # GitHub refuses comment and issue bodies longer than this
MAX_TITLE = 80  # issue titles may be longer (256), but a short one reads better in lists
REACTIONS = {"👍": "+1", "👎": "-1", "😄": "laugh", "😕": "confused", "❤": "heart", "🎉": "hooray", "🚀": "rocket",
             "👀": "eyes"}
CATCH_UP_MAX = 100  # comments fetched per repository after a restart (one page)
_HANDLED = {("issue_comment", "created"), ("issues", "opened"), ("pull_request", "opened"),
            ("pull_request_review_comment", "created")}


class _Malformed(ValueError):
    """A webhook payload without the fields its event type promises."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (X-Hub-Signature-256) is the HMAC-SHA256 of `body` under `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def _field(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _Malformed(f"{key} missing or not {kind}")
    return value


class GitHubChannel(Channel):
    type = "github"
    settings_asked = ("GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET")
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, cards=False, typing=False, files=False,
        max_message_length=MAX_BODY,
        formatting="GitHub Flavored Markdown: **bold**, _italic_, `code`, ```fenced blocks```, tables, > quotes;"
                   " @login notifies that person",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._client: httpx.AsyncClient | None = None
        self._secret = ""
        self._login: str | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._failing = False  # the last request failed transiently: tell the host when one succeeds again
        self._seen: dict[str, tuple[str, int]] = {}  # repo → (created_at, id) of the newest comment passed on
        self._seen_file: Path | None = None
        self._catch_up_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        token = extra.get("GITHUB_TOKEN")
        if not token:
            raise ConfigError("GITHUB_TOKEN is not set: create a fine-grained personal access token (or a GitHub"
                              " App installation token) with Issues and Pull requests read/write;"
                              " see docs/channels/github.md")
        self._secret = extra.get("GITHUB_WEBHOOK_SECRET") or ""
        if not self._secret:
            raise ConfigError("GITHUB_WEBHOOK_SECRET is not set: choose a long random string and enter the same one as"
                              " the webhook's secret on GitHub; see docs/channels/github.md")
        self._client = httpx.AsyncClient(
            base_url=extra.get("GITHUB_API_URL") or DEFAULT_API_URL,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "nanoclaw"},
            timeout=httpx.Timeout(20.0),
        )
        self._login = extra.get("GITHUB_BOT_LOGIN") or None
        if self._login is None:
            try:
                self._login = await self._fetch_login()
            except ChannelUnavailable as exc:
                # GitHub unreachable now: keep the host running and learn the login in the background.
                log.warning("github.login_unavailable", error=str(exc))
                self._login_task = asyncio.create_task(self._retry_login())
            except ConfigError:
                await self._client.aclose()
                raise
        self.host.register_webhook("github", self._on_webhook)
        self._seen_file = self.host.settings.state_dir / "github-seen.json"
        self._seen = _read_seen(self._seen_file)
        if self._seen:
            self._catch_up_task = asyncio.create_task(self._catch_up())
        log.info("github.started", login=self._login or "?")

    async def stop(self) -> None:
        for task in (self._login_task, self._catch_up_task):
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()

    async def _fetch_login(self) -> str:
        try:
            user = await self._call("GET", "/user")
        except DestinationRefused as exc:
            raise ConfigError(f"GitHub refused GET /user ({exc}): check GITHUB_TOKEN; with a GitHub App token set"
                              " GITHUB_BOT_LOGIN to the app's bot login, e.g. my-app[bot]") from exc
        return str(_field(user, "login", str))

    async def _retry_login(self) -> None:
        backoff = self.backoff()
        while self._login is None:
            await backoff.wait("GitHub unreachable at start")
            try:
                self._login = await self._fetch_login()
            except ChannelUnavailable:
                continue
            except (ConfigError, _Malformed) as exc:
                log.error("github.login_failed", error=str(exc))
                self.report(Health.failed(str(exc)))
                return
        backoff.reset()
        log.info("github.started", login=self._login)

    # -- inbound -------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(self._secret, body, request.headers.get("X-Hub-Signature-256")):
            log.warning("github.webhook_rejected", reason="bad or missing signature", remote=request.remote)
            return web.Response(status=401, text="bad signature")
        kind = request.headers.get("X-GitHub-Event", "")
        if kind == "ping":
            return web.json_response({"ok": True})
        if self._login is None:  # without our login we could not drop our own comments: ask GitHub to redeliver
            return web.Response(status=503, text="starting")
        try:
            payload = json.loads(body)
            event = self._to_event(kind, payload)
        except (ValueError, _Malformed) as exc:
            log.warning("github.payload_malformed", kind=kind, error=str(exc))
            return web.Response(status=400, text="malformed payload")
        if event is None:
            return web.Response(status=204)
        await self._pass_on(event, _created_at(payload), _comment_id(payload))
        return web.Response(status=200)

    async def _pass_on(self, event: InboundEvent, created_at: str | None, comment_id: int) -> None:
        result = await self.host.receive(event)
        if not result.accepted and result.error:
            await self._tell_sender(event, result.error)
        if created_at and (created_at, comment_id) > self._seen.get(event.platform_id, ("", 0)):
            self._seen[event.platform_id] = (created_at, comment_id)
            if self._seen_file is not None:
                write_position(self._seen_file, self._seen, self.type)

    async def _catch_up(self) -> None:
        """Issue comments written while the host was down (the host ignores ones it already has)."""
        backoff = self.backoff()
        while self._login is None:  # our own comments must be recognised first
            await asyncio.sleep(0.2)
        for repo, (since, last_id) in list(self._seen.items()):
            while True:
                try:
                    comments = await self._call("GET", f"/repos/{repo}/issues/comments",
                                                params={"since": since, "sort": "created", "direction": "asc",
                                                        "per_page": CATCH_UP_MAX})
                    break
                except ChannelUnavailable as exc:
                    await backoff.wait(str(exc))
                except DestinationRefused as exc:  # the repo is gone or the token lost access
                    log.warning("github.catch_up_refused", repo=repo, error=str(exc))
                    comments = []
                    break
            passed = 0
            for comment in comments if isinstance(comments, list) else []:
                try:
                    if _field(comment, "id", int) <= last_id:
                        continue  # `since` includes the newest one passed on before
                    number = int(str(_field(comment, "issue_url", str)).rsplit("/", 1)[1])
                    payload = {"action": "created", "repository": {"full_name": repo}, "comment": comment,
                               "issue": {"number": number}}
                    event = self._to_event("issue_comment", payload)
                except (ValueError, IndexError, _Malformed) as exc:
                    log.warning("github.payload_malformed", kind="catch-up", error=str(exc))
                    continue
                if event is not None:
                    await self._pass_on(event, comment.get("created_at"), comment["id"])
                    passed += 1
            log.info("github.caught_up", repo=repo, comments=passed)
        if backoff.failing:
            backoff.reset()

    def _to_event(self, kind: str, payload: Any) -> InboundEvent | None:
        """The host's event for one delivery; None for events we do not handle and our own writing."""
        if not isinstance(payload, dict):
            raise _Malformed("the payload is not a JSON object")
        if (kind, payload.get("action")) not in _HANDLED:
            return None
        repo = _field(_field(payload, "repository", dict), "full_name", str)
        if kind in ("issues", "pull_request"):
            item = _field(payload, "issue" if kind == "issues" else "pull_request", dict)
            number, author = _field(item, "number", int), _field(item, "user", dict)
            title = _field(item, "title", str)
            text, message_id = f"{title}\n\n{item.get('body') or ''}".strip(), f"issue-{number}"
            url = item.get("html_url")
        else:
            issue = _field(payload, "issue" if kind == "issue_comment" else "pull_request", dict)
            comment = _field(payload, "comment", dict)
            number, author = _field(issue, "number", int), _field(comment, "user", dict)
            comment_id, text = _field(comment, "id", int), comment.get("body") or ""
            message_id = str(comment_id) if kind == "issue_comment" else f"review-{comment_id}"
            if kind == "pull_request_review_comment" and isinstance(comment.get("path"), str):
                text = f"(on `{comment['path']}`)\n{text}"
            url = comment.get("html_url")
        login = _field(author, "login", str)
        if self._login and login.lower() == self._login.lower():
            return None
        mentioned, text = self._rewrite_mention(text)
        return InboundEvent(
            channel_type=self.type, platform_id=repo, message_id=message_id, text=text, sender_id=login,
            sender_name=login, thread_id=str(number), chat_name=repo, mentions_assistant=mentioned,
            payload={"url": url} if isinstance(url, str) else {},
            from_bot=author.get("type") == "Bot" or login.endswith("[bot]"),
        )

    def _rewrite_mention(self, text: str) -> tuple[bool, str]:
        """`@<bot login>` marks a mention; it becomes `@<assistant name>`, the name the agent knows itself by."""
        if not self._login:
            return False, text
        handle = self._login.removesuffix("[bot]")  # people write @my-app for the app's bot my-app[bot]
        pattern = re.compile(rf"(?<![\w@./-])@{re.escape(handle)}(?:\[bot\])?(?![\w-])", re.IGNORECASE)
        rewritten, count = pattern.subn(f"@{self.host.settings.assistant_name}", text)
        return count > 0, rewritten

    async def _tell_sender(self, event: InboundEvent, error: str) -> None:
        try:
            await self._comment(event.platform_id, event.thread_id or "", f"@{event.sender_id} {error}")
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("github.notice_failed", repo=event.platform_id, error=str(exc))

    # -- outbound ------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = (message.text or "") if message.kind in ("chat", "system", "file") else render_text(message)
        if message.file is not None:  # the REST API cannot attach files; the host's text says what it was
            text = text or f"(a file, {message.file.name}, could not be attached on GitHub)"
        repo, thread = message.route.platform_id, message.route.thread_id
        pieces = split_message(text, MAX_BODY)
        first: str | None = None
        if thread is None:
            # No issue to answer on (a scheduled report, a message to the repo): open one.
            issue = await self._call("POST", f"/repos/{repo}/issues",
                                     {"title": title_from(pieces[0], MAX_TITLE), "body": pieces[0]})
            thread = str(_field(issue, "number", int))
            first, pieces = f"issue-{thread}", pieces[1:]
        for piece in pieces:
            comment_id = await self._comment(repo, thread, piece)
            first = first or comment_id
        return SendResult(first)

    async def _comment(self, repo: str, number: str, body: str) -> str:
        if not number.isdigit():
            raise DestinationRefused(f"{repo}: {number!r} is not an issue or pull request number")
        comment = await self._call("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        return str(_field(comment, "id", int))

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        body = split_message(text, MAX_BODY)[0]  # an edit cannot add comments: the rest of a too-long text is cut
        await self._call("PATCH", _item_path(route.platform_id, platform_message_id), {"body": body})

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        content = REACTIONS.get(emoji.replace("\ufe0f", ""))
        if content is None:
            log.debug("github.reaction_skipped", emoji=emoji)  # GitHub offers eight reactions only
            return
        await self._call("POST", _item_path(route.platform_id, platform_message_id) + "/reactions",
                         {"content": content})

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, Any] | None = None) -> Any:
        """One REST call; transient failures are ChannelUnavailable, refusals DestinationRefused."""
        assert self._client is not None, "GitHubChannel.start() was not called"
        try:
            response = await self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            self._failing = True
            raise ChannelUnavailable(f"GitHub unreachable: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            if self._failing:
                self._failing = False
                self.host.channel_ready(self.type)
            try:
                return response.json() if response.content else {}
            except ValueError as exc:  # a proxy's error page with a 200: treat as a passing fault
                raise ChannelUnavailable(f"GitHub {method} {path}: the answer is not JSON") from exc
        reason = f"GitHub {method} {path}: {response.status_code} {_message(response)}"
        if response.status_code >= 500 or response.status_code == 429 or _rate_limited(response):
            self._failing = True
            raise ChannelUnavailable(reason)
        raise DestinationRefused(reason)


def _item_path(repo: str, platform_message_id: str) -> str:
    """REST path of what a message id names: an issue/PR body, a review comment or an issue comment."""
    kind, _, number = platform_message_id.rpartition("-")
    if not number.isdigit() or kind not in ("", "issue", "review"):
        raise DestinationRefused(f"{platform_message_id!r} is not a GitHub comment or issue id")
    if kind == "issue":
        return f"/repos/{repo}/issues/{number}"
    if kind == "review":
        return f"/repos/{repo}/pulls/comments/{number}"
    return f"/repos/{repo}/issues/comments/{number}"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return response.reason_phrase


def _rate_limited(response: httpx.Response) -> bool:
    # GitHub answers 403 (not 429) when the primary or a secondary rate limit is hit.
    if response.status_code != 403:
        return False
    return (response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
            or "rate limit" in _message(response).lower())


def _created_at(payload: Any) -> str | None:
    """When the delivered comment (or issue) was written, ISO 8601 as GitHub gives it."""
    item = payload.get("comment") or payload.get("issue") or payload.get("pull_request") \
        if isinstance(payload, dict) else None
    value = item.get("created_at") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _comment_id(payload: Any) -> int:
    comment = payload.get("comment") if isinstance(payload, dict) else None
    value = comment.get("id") if isinstance(comment, dict) else None
    return value if isinstance(value, int) else 0


def _read_seen(path: Path) -> dict[str, tuple[str, int]]:
    data = read_position(path, "github")
    if not isinstance(data, dict):
        return {}
    return {repo: (str(v[0]), int(v[1])) for repo, v in data.items()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)}
