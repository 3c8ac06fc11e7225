"""The Linear channel: conversations in the comments of Linear issues.

Owns the webhook endpoint `/hooks/linear` (HMAC signature, replay window, Comment and Issue events) and the
GraphQL calls that answer there (comments, replies, edits, reactions, file uploads, new issues), made with
gql over aiohttp. A chat is a team (its id); a thread is an issue (its id), so each issue is its own
session. Linear has no direct messages, buttons or typing indicator.

Linear retries a failed webhook only a few times, hours apart, so the channel keeps per team when the newest
comment it passed on was written (`state/linear-seen.json`) and at start fetches the comments written since.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import mimetypes
import re
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError, TransportQueryError, TransportServerError

from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, Health, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, title_from
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_URL = "https://api.linear.app/graphql"
DEFAULT_UPLOADS_URL = "https://uploads.linear.app"
# Linear documents no comment limit; answers longer than this read better as several comments.
MAX_BODY = 10_000
MAX_WEBHOOK_AGE = 60.0  # seconds: Linear's advice for webhookTimestamp, against replayed deliveries
MAX_FILE = 50 * 2**20
MAX_FILES_IN = 10
CATCH_UP_PAGES, PAGE_SIZE = 10, 50
TRANSIENT_CODES = {"RATELIMITED", "INTERNAL_SERVER_ERROR", "AUTHENTICATION_ERROR"}
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\((https?://[^)\s]+)\)")

VIEWER = "query Viewer { viewer { id name displayName } }"
COMMENT_CREATE = """mutation CommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id } } }"""
COMMENT_UPDATE = """mutation CommentUpdate($id: String!, $input: CommentUpdateInput!) {
  commentUpdate(id: $id, input: $input) { success } }"""
ISSUE_CREATE = """mutation IssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier } } }"""
ISSUE_UPDATE = """mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) { success } }"""
REACTION_CREATE = """mutation ReactionCreate($input: ReactionCreateInput!) {
  reactionCreate(input: $input) { success } }"""
FILE_UPLOAD = """mutation FileUpload($contentType: String!, $filename: String!, $size: Int!) {
  fileUpload(contentType: $contentType, filename: $filename, size: $size) {
    success uploadFile { uploadUrl assetUrl headers { key value } } } }"""
COMMENTS_SINCE = """query CommentsSince($team: ID!, $since: DateTimeOrDuration!, $after: String) {
  comments(first: %d, after: $after, orderBy: createdAt,
           filter: {createdAt: {gt: $since}, issue: {team: {id: {eq: $team}}}}) {
    nodes { id body createdAt parentId url user { id name displayName } botActor { id name }
            issue { id identifier team { id key name } } }
    pageInfo { hasNextPage endCursor } } }""" % PAGE_SIZE


class _Malformed(ValueError):
    """A webhook payload without the fields its event type promises."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (Linear-Signature) is the hex HMAC-SHA256 of `body` under `secret`."""
    if not header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))


def fresh(payload: Any, now: float | None = None) -> bool:
    """Whether the payload's webhookTimestamp (milliseconds) is within MAX_WEBHOOK_AGE of now."""
    stamp = payload.get("webhookTimestamp") if isinstance(payload, dict) else None
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return False
    return abs((time.time() if now is None else now) - stamp / 1000) <= MAX_WEBHOOK_AGE


def _str(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{key} missing or not a string")
    return value


def _opt(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


class LinearChannel(Channel):
    type = "linear"
    settings_asked = ("LINEAR_API_KEY", "LINEAR_WEBHOOK_SECRET")
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, files=True, max_message_length=MAX_BODY,
        formatting="Linear Markdown: **bold**, _italic_, `code`, ```fenced blocks```, lists, > quotes, [links](url)",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._client: Client | None = None
        self._session: Any = None  # gql's AsyncClientSession while started
        self._http: httpx.AsyncClient | None = None  # file uploads and downloads
        self._secret = ""
        self._key = ""
        self._uploads = DEFAULT_UPLOADS_URL
        self._me: dict[str, str] | None = None  # the viewer: the account the API key belongs to
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False
        self._parents: dict[str, str] = {}  # issue → the comment thread the last person wrote in
        self._seen: dict[str, tuple[str, str]] = {}  # team → (createdAt, id) of the newest comment passed on
        self._seen_file: Path | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        self._key = extra.get("LINEAR_API_KEY") or ""
        if not self._key:
            raise ConfigError("LINEAR_API_KEY is not set: in Linear, as the assistant's user, open Settings →"
                              " Security & access → Personal API keys → New API key; see docs/channels/linear.md")
        self._secret = extra.get("LINEAR_WEBHOOK_SECRET") or ""
        if not self._secret:
            raise ConfigError("LINEAR_WEBHOOK_SECRET is not set: copy the signing secret Linear shows for the"
                              " webhook (Settings → API → Webhooks); see docs/channels/linear.md")
        self._uploads = (extra.get("LINEAR_UPLOADS_URL") or DEFAULT_UPLOADS_URL).rstrip("/")
        transport = AIOHTTPTransport(url=extra.get("LINEAR_API_URL") or DEFAULT_API_URL, timeout=30,
                                     headers={"Authorization": self._key, "User-Agent": "nanoclaw"})
        self._client = Client(transport=transport, fetch_schema_from_transport=False)
        self._session = await self._client.connect_async()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)
        try:
            self._me = await self._fetch_viewer()
        except ChannelUnavailable as exc:  # Linear unreachable now: keep the host running, learn it later
            log.warning("linear.viewer_unavailable", error=str(exc))
            self._tasks.append(asyncio.create_task(self._retry_viewer()))
        except ConfigError:
            await self.stop()
            raise
        self.host.register_webhook(self.type, self._on_webhook)
        self._seen_file = self.host.settings.state_dir / "linear-seen.json"
        self._seen = _read_seen(self._seen_file)
        if self._seen:
            self._tasks.append(asyncio.create_task(self._catch_up()))
        log.info("linear.started", user=(self._me or {}).get("displayName", "?"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None and self._session is not None:
            await self._client.close_async()
            self._session = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _fetch_viewer(self) -> dict[str, str]:
        try:
            viewer = _opt(await self._call(VIEWER), "viewer")
        except DestinationRefused as exc:
            raise ConfigError(f"Linear refused the viewer query ({exc}): check LINEAR_API_KEY") from exc
        return {"id": _str(viewer, "id"), "name": str(_opt(viewer, "name") or ""),
                "displayName": str(_opt(viewer, "displayName") or _opt(viewer, "name") or "")}

    async def _retry_viewer(self) -> None:
        backoff = self.backoff()
        while self._me is None:
            await backoff.wait("Linear unreachable at start")
            try:
                self._me = await self._fetch_viewer()
            except ChannelUnavailable:
                continue
            except (ConfigError, _Malformed) as exc:
                log.error("linear.viewer_failed", error=str(exc))
                self.report(Health.failed(str(exc)))
                return
        backoff.reset()
        log.info("linear.started", user=self._me["displayName"])

    # -- inbound -------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(self._secret, body, request.headers.get("Linear-Signature")):
            log.warning("linear.webhook_rejected", reason="bad or missing signature", remote=request.remote)
            return web.Response(status=401, text="bad signature")
        try:
            payload = json.loads(body)
        except ValueError:
            log.warning("linear.payload_malformed", error="not JSON", size=len(body))
            return web.Response(status=400, text="not JSON")
        if not fresh(payload):  # signed, but old (or without a time): a replayed delivery
            log.warning("linear.webhook_rejected", reason="timestamp outside the replay window", remote=request.remote)
            return web.Response(status=401, text="stale delivery")
        if self._me is None:  # without our own id we could not drop our own comments: Linear retries later
            return web.Response(status=503, text="starting")
        try:
            event = await self._to_event(payload)
        except _Malformed as exc:
            log.warning("linear.payload_malformed", error=str(exc))
            return web.Response(status=400, text="malformed payload")
        if event is not None:
            data = payload["data"]
            await self._pass_on(event, data.get("createdAt") if payload.get("type") == "Comment" else None)
        return web.Response(status=200)

    async def _to_event(self, payload: Any) -> InboundEvent | None:
        """The host's event for one delivery; None for events we do not handle and our own writing."""
        if not isinstance(payload, dict):
            raise _Malformed("the payload is not a JSON object")
        kind, action, data = payload.get("type"), payload.get("action"), payload.get("data")
        if action != "create" or kind not in ("Comment", "Issue"):
            return None
        if not isinstance(data, dict):
            raise _Malformed("data missing")
        actor = payload.get("actor")
        bot = isinstance(actor, dict) and actor.get("type") not in (None, "user")
        if kind == "Issue":
            return await self._issue_event(data, bot)
        return await self._comment_event(data, bot)

    async def _comment_event(self, data: dict[str, Any], bot: bool = False) -> InboundEvent | None:
        comment_id, body = _str(data, "id"), data.get("body")
        issue = _opt(data, "issue")
        issue_id = _opt(data, "issueId") or _opt(issue, "id")
        team = _opt(issue, "teamId") or _opt(_opt(issue, "team"), "id")
        if not isinstance(body, str) or not isinstance(issue_id, str) or not isinstance(team, str):
            raise _Malformed("a comment needs body, issue id and team id")
        user = _opt(data, "user")
        user_id = _opt(data, "userId") or _opt(user, "id")
        if self._me is not None and user_id == self._me["id"]:
            return None
        parent = _opt(data, "parentId")
        self._parents[issue_id] = parent if isinstance(parent, str) and parent else comment_id
        identifier = _opt(issue, "identifier")
        return await self._event(team, comment_id, body, issue_id, user_id, user, _opt(issue, "team"),
                                 bot or bool(_opt(data, "botActor")),
                                 {"url": data.get("url"), "issue": identifier})

    async def _issue_event(self, data: dict[str, Any], bot: bool) -> InboundEvent | None:
        issue_id, title = _str(data, "id"), _str(data, "title")
        team = _opt(data, "teamId") or _opt(_opt(data, "team"), "id")
        if not isinstance(team, str):
            raise _Malformed("an issue needs a team id")
        creator = _opt(data, "creator")
        creator_id = _opt(data, "creatorId") or _opt(creator, "id")
        if self._me is not None and creator_id == self._me["id"]:
            return None
        text = f"{title}\n\n{data.get('description') or ''}".strip()
        return await self._event(team, f"issue-{issue_id}", text, issue_id, creator_id, creator, _opt(data, "team"),
                                 bot or bool(_opt(data, "botActor")),
                                 {"url": data.get("url"), "issue": data.get("identifier")})

    async def _event(self, team: str, message_id: str, body: str, issue_id: str, user_id: Any, user: Any,
                     team_info: Any, bot: bool, payload: dict[str, Any]) -> InboundEvent:
        if not isinstance(user_id, str) or not user_id:
            user_id, bot = "unknown", True  # written by an integration without a user
        name = _opt(user, "name") or _opt(user, "displayName")  # the full name (webhooks carry only it)
        chat_name = _opt(team_info, "name") or _opt(team_info, "key")
        mentioned, text = self._rewrite_mention(body)
        files, notes = await self._downloads(body)
        return InboundEvent(
            channel_type=self.type, platform_id=team, message_id=message_id, text="\n".join([text, *notes]).strip(),
            sender_id=user_id, sender_name=name if isinstance(name, str) else None, thread_id=issue_id,
            chat_name=chat_name if isinstance(chat_name, str) else None, mentions_assistant=mentioned,
            payload={k: v for k, v in payload.items() if isinstance(v, str)}, files=tuple(files), from_bot=bot,
        )

    def _rewrite_mention(self, text: str) -> tuple[bool, str]:
        """`@<display name>` (or a link to the profile) marks a mention; it becomes `@<assistant name>`."""
        handle = (self._me or {}).get("displayName")
        if not handle:
            return False, text
        name = re.escape(handle)
        profile = rf"\[@?[^\]\n]*\]\(https://linear\.app/[\w-]+/profiles/{name}\)"
        pattern = re.compile(rf"{profile}|(?<![\w@./-])@{name}(?![\w-])", re.IGNORECASE)
        rewritten, count = pattern.subn(f"@{self.host.settings.assistant_name}", text)
        return count > 0, rewritten

    async def _downloads(self, body: str) -> tuple[list[FileAttachment], list[str]]:
        """Files linked from Linear's upload storage (only there: the API key goes with the request)."""
        files: list[FileAttachment] = []
        notes: list[str] = []
        for _, label, url in _LINK.findall(body)[:MAX_FILES_IN]:
            if not url.startswith(self._uploads + "/") or self._http is None:
                continue
            name = label.strip() or url.rsplit("/", 1)[-1] or "file"
            try:
                data = bytearray()
                async with self._http.stream("GET", url, headers={"Authorization": self._key}) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_FILE:
                            raise ValueError("larger than 50 MB")
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("linear.download_failed", error=str(exc)[:200])
                notes.append(f"[{name} could not be downloaded]")
                continue
            files.append(FileAttachment(name, bytes(data), response.headers.get("content-type")))
        return files, notes

    async def _pass_on(self, event: InboundEvent, created_at: Any) -> None:
        result = await self.host.receive(event)
        if not result.accepted and result.error:
            try:
                await self._comment(event.thread_id or "", result.error)
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("linear.notice_failed", error=str(exc))
        if isinstance(created_at, str) and (created_at, event.message_id) > self._seen.get(event.platform_id, ("", "")):
            self._seen[event.platform_id] = (created_at, event.message_id)
            if self._seen_file is not None:
                write_position(self._seen_file, self._seen, self.type)

    async def _catch_up(self) -> None:
        """Comments written while the host was down, oldest first (the host ignores ones it already has)."""
        backoff = self.backoff()
        while self._me is None:  # our own comments must be recognised first
            await asyncio.sleep(0.2)
        for team, (since, last_id) in list(self._seen.items()):
            found: list[dict[str, Any]] = []
            after: str | None = None
            for _ in range(CATCH_UP_PAGES):
                try:
                    page = _opt(await self._call(COMMENTS_SINCE, team=team, since=since, after=after), "comments")
                except ChannelUnavailable as exc:  # Linear is down: wait for it, as long as it takes
                    await backoff.wait(str(exc))
                    page = None
                except DestinationRefused as exc:  # the team is gone or the key lost access
                    log.warning("linear.catch_up_refused", team=team, error=str(exc))
                    break
                if page is None:
                    continue
                nodes = _opt(page, "nodes")
                found += [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
                info = _opt(page, "pageInfo")
                after = _opt(info, "endCursor")
                if not _opt(info, "hasNextPage") or not isinstance(after, str):
                    break
            passed = 0
            for node in sorted(found, key=lambda n: (str(n.get("createdAt")), str(n.get("id")))):
                if (str(node.get("createdAt")), str(node.get("id"))) <= (since, last_id):
                    continue
                try:
                    event = await self._comment_event(_from_node(node))
                except _Malformed as exc:
                    log.warning("linear.payload_malformed", kind="catch-up", error=str(exc))
                    continue
                if event is not None:
                    await self._pass_on(event, node.get("createdAt"))
                    passed += 1
            log.info("linear.caught_up", team=team, comments=passed)
        if backoff.failing:
            backoff.reset()

    # -- outbound ------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = (message.text or "") if message.kind in ("chat", "system", "file") else render_text(message)
        issue = message.route.thread_id
        if message.file is not None:
            link = await self._upload(message.file)
            text = f"{text}\n\n{link}".strip()
        pieces = split_message(text, MAX_BODY)
        first: str | None = None
        if issue is None:
            # No issue to answer in (a scheduled report to the team): open one.
            created = _opt(await self._call(ISSUE_CREATE, input={
                "teamId": message.route.platform_id, "title": title_from(pieces[0]), "description": pieces[0]}),
                "issueCreate")
            issue = _str(_opt(created, "issue"), "id")
            first, pieces = f"issue-{issue}", pieces[1:]
        for piece in pieces:
            comment_id = await self._comment(issue, piece)
            first = first or comment_id
        return SendResult(first)

    async def _comment(self, issue: str, body: str) -> str:
        fields = {"issueId": issue, "body": body}
        if issue in self._parents:  # answer in the comment thread the person wrote in
            fields["parentId"] = self._parents[issue]
        created = _opt(await self._call(COMMENT_CREATE, input=fields), "commentCreate")
        return _str(_opt(created, "comment"), "id")

    async def _upload(self, file: FileAttachment) -> str:
        """Put the file in Linear's storage (a signed URL); returns the Markdown link for the comment."""
        mime = file.mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        got = _opt(await self._call(FILE_UPLOAD, contentType=mime, filename=file.name, size=len(file.data)),
                   "fileUpload")
        upload = _opt(got, "uploadFile")
        target, asset = _str(upload, "uploadUrl"), _str(upload, "assetUrl")
        headers = {"Content-Type": mime, "Cache-Control": "public, max-age=31536000"}
        for header in _opt(upload, "headers") or []:
            if isinstance(_opt(header, "key"), str) and isinstance(_opt(header, "value"), str):
                headers[header["key"]] = header["value"]
        assert self._http is not None, "LinearChannel.start() was not called"
        try:
            response = await self._http.put(target, content=file.data, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"Linear's file storage is unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ChannelUnavailable(f"Linear's file storage answered {response.status_code}")
        if not response.is_success:
            raise DestinationRefused(f"Linear's file storage refused {file.name}: {response.status_code}")
        label = file.name.replace("]", ")").replace("[", "(")
        return f"{'!' if mime.startswith('image/') else ''}[{label}]({asset})"

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        body = split_message(text, MAX_BODY)[0]  # an edit cannot add comments: the rest of a too-long text is cut
        if platform_message_id.startswith("issue-"):
            await self._call(ISSUE_UPDATE, id=platform_message_id[6:], input={"description": body})
        else:
            await self._call(COMMENT_UPDATE, id=platform_message_id, input={"body": body})

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        target = ({"issueId": platform_message_id[6:]} if platform_message_id.startswith("issue-")
                  else {"commentId": platform_message_id})
        await self._call(REACTION_CREATE, input={**target, "emoji": emoji})

    async def _call(self, query: str, **variables: Any) -> dict[str, Any]:
        """One GraphQL request; transient failures are ChannelUnavailable, refusals DestinationRefused."""
        if self._session is None:
            raise ChannelUnavailable("the Linear channel is not started")
        try:
            result = await self._session.execute(GraphQLRequest(query, variable_values=variables or None))
        except TransportQueryError as exc:
            code = _error_code(exc.errors)
            if code in TRANSIENT_CODES:
                if code == "AUTHENTICATION_ERROR":  # retried: nothing is lost while the owner renews the key
                    log.error("linear.key_refused")
                self._failing = True
                raise ChannelUnavailable(f"Linear: {code}: {_error_message(exc.errors)}") from exc
            raise DestinationRefused(f"Linear refused it: {_error_message(exc.errors)}") from exc
        except TransportServerError as exc:
            if exc.code is not None and 400 <= exc.code < 500 and exc.code not in (401, 429):
                raise DestinationRefused(f"Linear answered {exc.code}") from exc
            self._failing = True
            raise ChannelUnavailable(f"Linear answered {exc.code or 'an error'}") from exc
        except (TransportError, OSError, asyncio.TimeoutError) as exc:
            self._failing = True
            raise ChannelUnavailable(f"Linear unreachable: {type(exc).__name__}: {exc}") from exc
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return result if isinstance(result, dict) else {}


def _from_node(node: dict[str, Any]) -> dict[str, Any]:
    """A comment from the GraphQL API in the webhook's shape."""
    issue = node.get("issue") if isinstance(node.get("issue"), dict) else {}
    team = issue.get("team") if isinstance(issue.get("team"), dict) else {}
    return {**node, "issueId": issue.get("id"), "issue": {**issue, "teamId": team.get("id")},
            "userId": _opt(node.get("user"), "id")}


def _error_code(errors: Any) -> str:
    for error in errors if isinstance(errors, list) else []:
        code = _opt(_opt(error, "extensions"), "code")
        if isinstance(code, str):
            return code
    return ""


def _error_message(errors: Any) -> str:
    first = errors[0] if isinstance(errors, list) and errors else {}
    extensions = _opt(first, "extensions")
    return str(_opt(extensions, "userPresentableMessage") or _opt(first, "message") or "unknown error")[:200]


def _read_seen(path: Path) -> dict[str, tuple[str, str]]:
    data = read_position(path, "linear")
    if not isinstance(data, dict):
        return {}
    return {team: (v[0], v[1]) for team, v in data.items()
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)}
