"""The Slack channel: a Bolt app on Socket Mode (SLACK_APP_TOKEN) or on the Events API (`/hooks/slack`).

It owns the mapping between Slack and NanoClaw: message events become
`InboundEvent`s (a reply in a thread carries the thread's `thread_ts`; a
top-level message has no thread), outgoing messages become `chat.postMessage`
calls in mrkdwn, cards become Block Kit buttons whose presses answer the host,
and files go out with `files_upload_v2` and come in from `url_private_download`.
In Socket Mode it keeps the WebSocket up itself, with exponential backoff.

Nothing written while NanoClaw was stopped (or the socket down) is lost: per conversation (and per
thread) it keeps the `ts` of the newest message it passed to the host in
`state_dir/slack-seen-<team>.json`, and after each (re)connection (in Events API mode: at start, as
Slack gives up retrying) it reads what came after it with `conversations.history`/`.replies`, oldest
first, through the same handler as live events. Conversations it never saw are history: not read.

Credential requests (a card whose payload has "credential") get "Enter credential" and
"Refuse" buttons: the first opens a modal (`views.open`) whose `view_submission` goes to
`ChannelHost.submit_credential`; the person gets an ephemeral status and the card loses its
buttons. Everything the modal needs rides in the buttons' values and the view's
private_metadata, so a card keeps working across restarts. The value is never logged,
never put into a message, and dropped from the payload as soon as it is read.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from nanoclaw.channels import credentials, whoami
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.slack_blocks import (
    CREDENTIAL_BLOCK, CREDENTIAL_ENTER, CREDENTIAL_REFUSE, CREDENTIAL_VIEW, ENTER_LABEL, CredentialCard, card_blocks,
    card_head, credential_blocks, credential_modal, credential_request, escape, shorten, take_value,
)
from nanoclaw.channels.base import Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.channels.text import split_message, to_slack
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
MESSAGE_LIMIT = 4000  # Slack accepts more, but truncates long texts in practice
SECTION_LIMIT = 3000  # Block Kit section text
MAX_FILE_BYTES = 50 * 2**20
PING_INTERVAL = 10.0
ACTION_ID = re.compile(r"^nanoclaw_answer_\d+$")
CREDENTIAL_ACTION = re.compile(rf"^(?:{CREDENTIAL_ENTER}|{CREDENTIAL_REFUSE})$")
SEEN_SAVE_DELAY = 2.0  # seconds: positions are written at most this often (and on stop)
CATCH_UP_LIMIT = 200  # messages read back per conversation and catch-up; older ones are skipped (logged)
PASSED_MEMORY = 4096  # messages this process passed to the host (a live event and its catch-up copy go once)
GONE_ERRORS = {"channel_not_found", "not_in_channel", "thread_not_found"}  # the conversation is dropped
FINISHED_MEMORY = 512  # credential cards this process closed (a late "expired" leaves them as they are)
# Subtypes that are a person's (or a bot's) new message; the others are edits, joins, topic changes…
MESSAGE_SUBTYPES = {None, "file_share", "bot_message", "thread_broadcast", "me_message"}
TRANSIENT_ERRORS = {"ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"}
EMOJI_NAMES = {
    "👍": "thumbsup", "👎": "thumbsdown", "✅": "white_check_mark", "✔": "heavy_check_mark", "❌": "x",
    "👀": "eyes", "❤": "heart", "🎉": "tada", "🙏": "pray", "😂": "joy", "🔥": "fire", "🚀": "rocket",
    "🤔": "thinking_face", "👋": "wave", "👌": "ok_hand", "💯": "100", "⚠": "warning",
    "⏳": "hourglass_flowing_sand", "😊": "blush", "🙂": "slightly_smiling_face", "😢": "cry", "👏": "clap", "💡": "bulb", "📌": "pushpin",
}


class SlackChannel(Channel):
    type = "slack"
    settings_asked = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, cards=True, modals=True, typing=False, files=True,
        max_message_length=MESSAGE_LIMIT,
        stream_interval=1.2,  # chat.update is Tier 3 (~50 a minute)
        formatting="Slack: write Markdown **bold**, _italic_, ~~strike~~, `code`, ``` blocks, lists and [links](url); "
                   "it is converted to Slack mrkdwn (no tables; headings show as bold)",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._socket: SocketModeClient | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._names: dict[str, str | None] = {}  # user and channel ids → display names
        # Events are handled concurrently by the libraries; these keep them in Slack's order for the host.
        self._dispatching = asyncio.Lock()
        self._receiving = asyncio.Lock()
        self._finished: dict[str, None] = {}  # tokens of credential cards closed here, oldest first
        self._bot_user_id: str | None = None
        self._bot_id: str | None = None
        # "channel" or "channel/thread_ts" → {"ts": newest passed to the host, "channel_type": …}
        self._seen: dict[str, dict[str, str]] = {}
        self._seen_file: Path | None = None
        self._seen_dirty = False
        self._saver: asyncio.Task[None] | None = None
        self._catcher: asyncio.Task[None] | None = None
        self._catch_up_again = False
        self._passed: dict[str, None] = {}  # "channel:ts", oldest first

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        return await whoami.slack(settings.extra)

    async def start(self) -> None:
        extra = self.host.settings.extra
        bot_token = extra.get("SLACK_BOT_TOKEN", "")
        app_token = extra.get("SLACK_APP_TOKEN", "")
        signing_secret = extra.get("SLACK_SIGNING_SECRET", "")
        if not bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN (xoxb-…) is missing: api.slack.com/apps → your app → "
                              "OAuth & Permissions → Bot User OAuth Token (see docs/channels/slack.md)")
        if not app_token and not signing_secret:
            raise ConfigError("set SLACK_APP_TOKEN (xapp-…, Socket Mode: Basic Information → App-Level Tokens) or, "
                              "for the Events API, SLACK_SIGNING_SECRET (Basic Information → Signing Secret)")
        self._bot_token = bot_token
        self._api_url = extra.get("SLACK_API_URL") or DEFAULT_API_URL
        self.client = AsyncWebClient(token=bot_token, base_url=self._api_url)
        await self._check_token()
        # Signatures are checked in _on_webhook before any parsing; Socket Mode needs none.
        self._app = AsyncApp(client=self.client, signing_secret=signing_secret, request_verification_enabled=False,
                             name="nanoclaw")
        self._app.event("message")(self._on_message)
        self._app.event("app_mention")(self._ignore)  # the same text also arrives as a message event
        self._app.action(ACTION_ID)(self._on_button)
        self._app.action(CREDENTIAL_ACTION)(self._on_credential_button)
        self._app.view(CREDENTIAL_VIEW)(self._on_credential_view)
        if app_token:
            self._socket = SocketModeClient(app_token=app_token, web_client=self.client, logger=_socket_logger(),
                                            auto_reconnect_enabled=False,  # we reconnect, with backoff
                                            ping_interval=PING_INTERVAL,
                                            on_close_listeners=[self._disconnected],
                                            on_error_listeners=[self._disconnected])
            self._socket.socket_mode_request_listeners.append(self._on_socket_request)  # type: ignore[arg-type]
            self._keeper = asyncio.create_task(self._keep_connected())
        else:
            self._verifier = SignatureVerifier(signing_secret)
            url = self.host.register_webhook("slack", self._on_webhook)
            log.info("slack.webhook", url=url)
            self._want_catch_up()  # Slack stops retrying events after a while

    async def stop(self) -> None:
        # Close the client first: the library can swallow a cancellation, but its `closed` ends every loop.
        if self._socket is not None:
            await self._socket.close()
            self._wake.set()
        for task in (self._keeper, self._catcher, self._saver):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._save_seen()

    async def _check_token(self) -> None:
        try:
            me = await self.client.auth_test()
            self._bot_user_id, self._bot_id = me.get("user_id"), me.get("bot_id")
            self._open_seen(me.get("team_id") or me.get("user_id"))
            log.info("slack.connected", team=me.get("team"), bot=me.get("user"),
                     mode="socket" if self.host.settings.extra.get("SLACK_APP_TOKEN") else "events")
        except SlackApiError as exc:
            if _is_transient(exc):
                log.warning("slack.auth_deferred", error=_error_code(exc))
                return
            raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({_error_code(exc)}): copy the Bot User "
                              "OAuth Token again from OAuth & Permissions") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("slack.auth_deferred", error=type(exc).__name__)  # Bolt checks again at the first event

    # -- Socket Mode -------------------------------------------------------------------

    async def _keep_connected(self) -> None:
        assert self._socket is not None
        backoff = self.backoff()
        error = ""  # the first connection is immediate
        while not self._socket.closed:
            if error:
                await backoff.wait(error)
            try:
                await self._socket.connect_to_new_endpoint(force=True)
            except (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = type(exc).__name__
                continue
            backoff.reset()
            self._want_catch_up()  # what was written while the socket was down
            error = "connection closed"
            while await self._socket.is_connected():  # woken at once on close, else checked each ping
                self._wake.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), PING_INTERVAL)

    async def _disconnected(self, message: Any) -> None:
        self._wake.set()

    async def _on_socket_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        try:
            async with self._dispatching:  # Bolt starts the listener before it returns the ack
                response = await self._app.async_dispatch(AsyncBoltRequest(body=req.payload, mode="socket_mode"))
        except Exception as exc:  # a malformed envelope must not reach the library's loop as an error
            log.warning("slack.malformed_event", type=req.type, error=type(exc).__name__)
            return
        if response.status == 200:  # the ack carries Bolt's answer (a modal's errors) as Slack's HTTP response would
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id,
                                                                      payload=_response_payload(response)))
        else:
            log.warning("slack.event_rejected", type=req.type, status=response.status)

    # -- Events API ----------------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        try:
            valid = self._verifier.is_valid(body, request.headers.get("X-Slack-Request-Timestamp"),
                                            request.headers.get("X-Slack-Signature"))
        except ValueError:  # a timestamp that is not a number
            valid = False
        if not valid:
            log.warning("slack.bad_signature", remote=request.remote)
            return web.Response(status=401, text="invalid signature")
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
        except ValueError as exc:
            log.warning("slack.malformed_event", error=type(exc).__name__)
            return web.Response(status=400, text="malformed payload")
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

    # -- inbound -------------------------------------------------------------------------

    async def _ignore(self) -> None:
        return None

    async def _on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        async with self._receiving:
            await self._receive(event, context.bot_user_id, context.bot_id)

    async def _receive(self, event: dict[str, Any], bot_user_id: str | None, bot_id: str | None) -> None:
        subtype = event.get("subtype")
        if subtype not in MESSAGE_SUBTYPES:
            return
        channel, ts, text = event.get("channel"), event.get("ts"), event.get("text") or ""
        sender = event.get("user") or event.get("bot_id")
        if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(sender, str) and isinstance(text, str)):
            log.warning("slack.malformed_event", type="message", subtype=subtype)
            return
        if sender in (bot_user_id, bot_id):  # our own message (Bolt drops most already)
            return
        passed = f"{channel}:{ts}"
        if passed in self._passed:  # already passed live, or by an earlier catch-up
            return
        from_bot = bool(event.get("bot_id")) or subtype == "bot_message"
        mention = re.compile(rf"<@{re.escape(bot_user_id or '-')}(?:\|[^>]*)?>")
        mentioned = bool(bot_user_id) and bool(mention.search(text))
        text = html.unescape(mention.sub(f"@{self.host.settings.assistant_name}", text))
        files, notes = await self._download(event.get("files"))
        is_dm = event.get("channel_type") == "im"
        sender_name = event.get("username") if from_bot else await self._name("user", sender)
        await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=channel, message_id=ts, text="\n".join([text, *notes]).strip(),
            sender_id=sender, sender_name=sender_name, thread_id=event.get("thread_ts"), is_dm=is_dm,
            chat_name=sender_name if is_dm else await self._name("channel", channel),
            mentions_assistant=mentioned, files=tuple(files), from_bot=from_bot,
        ))
        self._passed[passed] = None
        while len(self._passed) > PASSED_MEMORY:
            del self._passed[next(iter(self._passed))]
        thread = event.get("thread_ts")
        self._note_seen(channel, thread if isinstance(thread, str) else None, ts, str(event.get("channel_type") or ""))

    # -- catching up -----------------------------------------------------------------------

    def _open_seen(self, owner: Any) -> None:
        """Load the positions of an earlier run (a missing or unreadable file: none, with a warning)."""
        if self._seen_file is not None or not isinstance(owner, str) or not owner:
            return
        self._seen_file = self.host.settings.state_dir / f"slack-seen-{re.sub(r'[^A-Za-z0-9_-]', '_', owner)}.json"
        raw = read_position(self._seen_file, self.type)
        if raw is None:
            return
        saved = raw.get("conversations") if isinstance(raw, dict) else None
        if not isinstance(saved, dict):
            log.warning("channel.position_unreadable", channel=self.type, path=str(self._seen_file),
                        error="no conversations object")
            return
        for key, entry in saved.items():
            if not (isinstance(key, str) and isinstance(entry, dict) and _ts_key(entry.get("ts")) is not None):
                log.warning("slack.seen_state_entry_skipped", conversation=str(key)[:100])
                continue
            current = self._seen.get(key)
            if current is None or _ts_key(entry["ts"]) > _ts_key(current["ts"]):  # type: ignore[operator]
                self._seen[key] = {"ts": entry["ts"], "channel_type": str(entry.get("channel_type") or "")}

    def _note_seen(self, channel: str, thread: str | None, ts: str, channel_type: str) -> None:
        keys = [channel] if thread is None else [f"{channel}/{thread}", channel]
        for i, key in enumerate(keys):
            current = self._seen.get(key)
            if i and current is not None:  # a reply makes its channel known; it does not move the channel on
                continue
            new = _ts_key(ts)
            if new is None or (current is not None and (_ts_key(current["ts"]) or (0, 0)) >= new):
                continue
            self._seen[key] = {"ts": ts, "channel_type": channel_type or (current or {}).get("channel_type", "")}
            self._seen_dirty = True
        if self._seen_dirty and (self._saver is None or self._saver.done()):
            self._saver = asyncio.create_task(self._save_later(), name="slack-seen-save")

    async def _save_later(self) -> None:
        await asyncio.sleep(SEEN_SAVE_DELAY)
        self._save_seen()

    def _save_seen(self) -> None:
        if not self._seen_dirty or self._seen_file is None:
            return
        if write_position(self._seen_file, {"conversations": self._seen}, self.type):
            self._seen_dirty = False

    def _want_catch_up(self) -> None:
        self._catch_up_again = True
        if self._catcher is None or self._catcher.done():
            self._catcher = asyncio.create_task(self._catch_up_loop(), name="slack-catch-up")

    async def _catch_up_loop(self) -> None:
        while self._catch_up_again:  # a reconnection during a catch-up asks for another one
            self._catch_up_again = False
            try:
                await self._catch_up()
            except Exception as exc:  # never fatal: the next connection tries again
                log.warning("slack.catch_up_failed", error=f"{type(exc).__name__}: {exc}")

    async def _catch_up(self) -> None:
        if self._seen_file is None:  # auth.test was deferred at start
            await self._check_token()
            if self._seen_file is None:
                log.warning("slack.catch_up_deferred", reason="bot identity unknown")
                return
        for key, entry in list(self._seen.items()):
            channel, _, thread = key.partition("/")
            messages = await self._missed(key, channel, thread or None, entry["ts"])
            for message in messages:
                event = {**message, "channel": channel, "channel_type": entry.get("channel_type") or None}
                if thread:
                    event.setdefault("thread_ts", thread)
                elif event.get("thread_ts") == event.get("ts"):
                    event.pop("thread_ts")  # a thread's parent: a top-level message, as it came live
                async with self._receiving:
                    await self._receive(event, self._bot_user_id, self._bot_id)
            if messages:
                log.info("slack.caught_up", conversation=key, messages=len(messages))

    async def _missed(self, key: str, channel: str, thread: str | None, oldest: str) -> list[dict[str, Any]]:
        """Messages of a conversation after `oldest`, oldest first (at most CATCH_UP_LIMIT)."""
        try:
            if thread:
                resp = await self.client.conversations_replies(channel=channel, ts=thread, oldest=oldest,
                                                               inclusive=False, limit=CATCH_UP_LIMIT)
            else:
                resp = await self.client.conversations_history(channel=channel, oldest=oldest, inclusive=False,
                                                                limit=CATCH_UP_LIMIT)
        except SlackApiError as exc:
            error = _error_code(exc)
            if error in GONE_ERRORS:
                log.info("slack.catch_up_dropped", conversation=key, error=error)
                self._seen.pop(key, None)
                self._seen_dirty = True
                self._save_seen()
            else:
                log.warning("slack.catch_up_failed", conversation=key, error=error)
            return []
        except (SlackRequestError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("slack.catch_up_failed", conversation=key, error=type(exc).__name__)
            return []
        floor = _ts_key(oldest) or (0, 0)
        messages = [m for m in resp.get("messages") or [] if isinstance(m, dict)
                    and (_ts_key(m.get("ts")) or (0, 0)) > floor]  # replies always start with the parent
        messages.sort(key=lambda m: _ts_key(m["ts"]))  # type: ignore[arg-type,return-value]
        if resp.get("has_more") or len(messages) > CATCH_UP_LIMIT:
            log.warning("slack.catch_up_capped", conversation=key, limit=CATCH_UP_LIMIT)
        return messages[:CATCH_UP_LIMIT]

    async def _name(self, kind: str, id_: str) -> str | None:
        """Display name of a user or channel, looked up once (None when Slack will not tell)."""
        if id_ not in self._names:
            try:
                if kind == "user":
                    user = (await self.client.users_info(user=id_))["user"]
                    profile = user.get("profile") or {}
                    self._names[id_] = profile.get("display_name") or profile.get("real_name") or user.get("name")
                else:
                    self._names[id_] = (await self.client.conversations_info(channel=id_))["channel"].get("name")
            except (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, KeyError, TypeError) as exc:
                log.debug("slack.name_unknown", kind=kind, id=id_, error=type(exc).__name__)
                return None  # not cached: the next message may have better luck
        return self._names[id_]

    async def _download(self, files: Any) -> tuple[list[FileAttachment], list[str]]:
        """Files shared with a message, and a note for each one that could not be taken."""
        got: list[FileAttachment] = []
        notes: list[str] = []
        if not isinstance(files, list) or not files:
            return got, notes
        async with aiohttp.ClientSession() as session:
            for f in files:
                if not isinstance(f, dict):
                    continue
                name = str(f.get("name") or f.get("title") or f.get("id") or "file")
                url = f.get("url_private_download") or f.get("url_private")
                if _size(f) > MAX_FILE_BYTES:
                    notes.append(f"[file {name} not received: larger than 50 MB]")
                elif not isinstance(url, str) or not self._may_send_token_to(url):
                    notes.append(f"[file {name} not received: no download link]")
                elif (data := await self._fetch(session, url)) is None:
                    notes.append(f"[file {name} could not be downloaded]")
                elif len(data) > MAX_FILE_BYTES:  # the size Slack announced was wrong
                    notes.append(f"[file {name} not received: larger than 50 MB]")
                else:
                    got.append(FileAttachment(name, data, f.get("mimetype")))
        return got, notes

    def _may_send_token_to(self, url: str) -> bool:
        # The bot token goes only to Slack's own hosts (or the configured API host, e.g. a test server).
        parts, api = urlsplit(url), urlsplit(self._api_url)
        slack = parts.scheme == "https" and (parts.hostname or "").endswith(".slack.com")
        return slack or parts.netloc == api.netloc

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> bytes | None:
        try:
            async with session.get(url, headers={"Authorization": f"Bearer {self._bot_token}"}) as resp:
                # Without the files:read scope Slack answers with its HTML login page, not the file.
                if resp.status != 200 or resp.content_type == "text/html":
                    log.warning("slack.file_failed", status=resp.status, type=resp.content_type)
                    return None
                return await resp.content.read(MAX_FILE_BYTES + 1)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("slack.file_failed", error=type(exc).__name__)
            return None

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()  # within Slack's 3 s, before the host does any work
        try:
            value = json.loads(action["value"])
            card_id, label, user = str(value["card"]), str(value["label"]), str(body["user"]["id"])
            channel, message = body["channel"]["id"], body["message"]
        except (KeyError, TypeError, ValueError):
            log.warning("slack.malformed_action")
            return
        error = await self.host.answer(card_id, label, user)
        try:
            async with _slack_errors("answer"):
                if error:  # only the person who pressed sees why
                    await self.client.chat_postEphemeral(channel=channel, user=user, text=error)
                    return
                # The buttons go away so nobody answers twice; the choice stays visible.
                blocks = [b for b in message.get("blocks") or [] if b.get("type") != "actions"]
                blocks.append({"type": "context", "elements": [
                    {"type": "mrkdwn", "text": f"<@{user}> chose *{escape(label)}*"}]})
                await self.client.chat_update(channel=channel, ts=message["ts"], text=message.get("text") or label,
                                              blocks=blocks)
        except (ChannelUnavailable, DestinationRefused) as exc:  # the answer itself was taken
            log.warning("slack.card_update_failed", error=str(exc))

    # -- credential requests -------------------------------------------------------------

    async def _on_credential_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()  # within Slack's 3 s; the trigger_id stays valid for views.open
        try:
            request = json.loads(action["value"])
            token, user = str(request["token"]), str(body["user"]["id"])
            message = body["message"]
            card = CredentialCard(token, str(body["channel"]["id"]), str(message["ts"]),
                                   message.get("thread_ts"), card_head(message, token))
        except (KeyError, TypeError, ValueError):
            log.warning("slack.malformed_action")
            return
        if action.get("action_id") == CREDENTIAL_REFUSE:
            await self._credential_done(card, user, credentials.submit(self.host, self.type, token, None, user))
            return
        trigger = body.get("trigger_id")
        try:
            if not isinstance(trigger, str):
                raise DestinationRefused("Slack sent no trigger_id")
            async with _slack_errors("views.open"):
                await self.client.views_open(trigger_id=trigger, view=credential_modal(
                    card, str(request.get("name") or ""), str(request.get("host") or "")))
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("slack.modal_failed", error=str(exc))
            await self._ephemeral(card, user, "The form could not be opened. Use the link in the message instead.")

    async def _on_credential_view(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """The modal was submitted: its value goes to the host, and nowhere else."""
        value = take_value(view)  # out of the payload first, whatever follows
        try:
            card = CredentialCard.from_metadata(view.get("private_metadata"))
            user = str(body["user"]["id"])
        except (KeyError, TypeError, ValueError):
            log.warning("slack.malformed_view")
            await ack(response_action="errors",
                      errors={CREDENTIAL_BLOCK: "This form is not valid. Use the link in the message instead."})
            return
        if not value:  # a required input cannot be empty on Slack; whitespace only is caught here
            await ack(response_action="errors", errors={CREDENTIAL_BLOCK: "Enter the value, or cancel."})
            return
        status = credentials.submit(self.host, self.type, card.token, value, user)
        del value  # the vault has it now; nothing here keeps it
        if status == "saved":
            await ack()  # closes the modal
        else:  # failed or expired: said in the modal, next to the field
            await ack(response_action="errors", errors={CREDENTIAL_BLOCK: credentials.reply(status)})
        await self._credential_done(card, user, status)


    async def _credential_done(self, card: CredentialCard, user: str, status: str) -> None:
        """Tell the person how it went (only they see it) and close the card."""
        log.info("slack.credential", status=status.partition(":")[0])
        await self._ephemeral(card, user, credentials.reply(status))
        if status.startswith("refused:"):
            return  # not this person's to answer: the request and its card stay open
        if status == "expired" and card.token in self._finished:
            return  # answered here before: the card already shows by whom
        self._finished[card.token] = None
        while len(self._finished) > FINISHED_MEMORY:
            del self._finished[next(iter(self._finished))]
        outcome = f"{credentials.outcome(status)} (<@{user}>)"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": card.head}}] \
            if card.head else []
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
        try:
            async with _slack_errors("chat.update"):
                await self.client.chat_update(channel=card.channel, ts=card.ts, blocks=blocks,
                                              text=f"{card.head}\n{outcome}".strip())
        except (ChannelUnavailable, DestinationRefused) as exc:  # the answer itself was taken
            log.warning("slack.card_update_failed", error=str(exc))

    async def _ephemeral(self, card: CredentialCard, user: str, text: str) -> None:
        try:
            async with _slack_errors("chat.postEphemeral"):
                await self.client.chat_postEphemeral(channel=card.channel, user=user, text=text,
                                                     thread_ts=card.thread_ts)
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("slack.ephemeral_failed", error=str(exc))

    # -- outbound ------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        route = message.route
        if message.file is not None:
            async with _slack_errors("files.upload"):
                result = await self.client.files_upload_v2(
                    channel=route.platform_id, thread_ts=route.thread_id, file=message.file.data,
                    filename=message.file.name, initial_comment=to_slack(message.text) if message.text else None)
            return SendResult(result["file"]["id"])
        text = to_slack(message.text or "")
        credential = credential_request(message)
        if credential is not None:  # the one-time link in the text stays, for whoever prefers it
            text += f"\nOr press *{ENTER_LABEL}* to type it into a Slack form: it goes to the vault, not into the chat."
            blocks: list[dict[str, Any]] | None = credential_blocks(message, credential)
        else:
            blocks = card_blocks(message) if message.buttons and message.card_id else None
        if message.buttons and blocks is None:  # choices nobody can answer by button: show them as text
            text += "\n" + "\n".join(f"{i}) {escape(label)}" for i, label in enumerate(message.buttons, 1))
        limit = SECTION_LIMIT if blocks is not None else MESSAGE_LIMIT
        title = f"*{escape(message.title)}*\n" if message.title else ""
        pieces = split_message(title + text, limit)
        first: str | None = None
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            extra: dict[str, Any] = {}
            if last and blocks is not None:
                extra["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}, *blocks]
            async with _slack_errors("chat.postMessage"):
                result = await self.client.chat_postMessage(channel=route.platform_id, thread_ts=route.thread_id,
                                                            text=piece, **extra)
            first = first or result["ts"]
        return SendResult(first)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        async with _slack_errors("chat.update"):
            await self.client.chat_update(channel=route.platform_id, ts=platform_message_id,
                                          text=shorten(to_slack(text), MESSAGE_LIMIT))

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        async with _slack_errors("chat.update"):  # blocks=[]: the buttons go (text alone would keep them)
            await self.client.chat_update(channel=route.platform_id, ts=platform_message_id, blocks=[],
                                          text=shorten(to_slack(f"{text}\n\n{outcome}"), MESSAGE_LIMIT))

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        name = _emoji_name(emoji)
        if name is None:
            log.debug("slack.reaction_skipped", emoji=emoji)
            return
        try:
            async with _slack_errors("reactions.add"):
                await self.client.reactions_add(channel=route.platform_id, timestamp=platform_message_id, name=name)
        except DestinationRefused as exc:
            if "already_reacted" not in str(exc):
                raise


def _response_payload(response: BoltResponse) -> dict[str, Any] | None:
    """Bolt's HTTP answer as a Socket Mode ack payload (as slack-bolt's own Socket Mode adapter sends it)."""
    if not response.body:
        return None
    if (response.headers.get("content-type") or [""])[0].startswith("application/json"):
        with suppress(ValueError):
            payload = json.loads(response.body)
            return payload if isinstance(payload, dict) else None
        return None
    return {"text": response.body}


class _HideViewSubmissions(logging.Filter):
    """slack-sdk's Socket Mode client logs every frame at DEBUG: a modal's submission is not written there."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted: leave it to the handler
            return True
        if "view_submission" in text:
            record.msg, record.args = "Received a view_submission frame (not logged: it holds what a person typed)", ()
        return True


def _socket_logger() -> logging.Logger:
    logger = logging.getLogger("slack_sdk.socket_mode.aiohttp")  # the client's default logger
    if not any(isinstance(f, _HideViewSubmissions) for f in logger.filters):
        logger.addFilter(_HideViewSubmissions())
    return logger


def _emoji_name(emoji: str) -> str | None:
    """Slack's name of an emoji: 👍 → thumbsup; ':tada:' and 'tada' are taken as names already."""
    emoji = emoji.strip().replace("\ufe0f", "")
    if re.fullmatch(r":?[a-z0-9_+\-]+:?", emoji):
        return emoji.strip(":")
    return EMOJI_NAMES.get(emoji)


def _ts_key(ts: Any) -> tuple[int, int] | None:
    """A Slack ts ("1710000001.000123") as a sortable pair; None when it is not one."""
    match = re.fullmatch(r"(\d+)\.(\d+)", ts) if isinstance(ts, str) else None
    return (int(match[1]), int(match[2].ljust(6, "0"))) if match else None


def _size(file: dict[str, Any]) -> int:
    try:
        return int(file.get("size") or 0)
    except (TypeError, ValueError):
        return 0


def _error_code(exc: SlackApiError) -> str:
    data = exc.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {exc.response.status_code}"


def _is_transient(exc: SlackApiError) -> bool:
    status = exc.response.status_code
    return status == 429 or status >= 500 or _error_code(exc) in TRANSIENT_ERRORS


@asynccontextmanager
async def _slack_errors(method: str) -> AsyncIterator[None]:
    """Slack's failures as the host's: retry later (ChannelUnavailable) or give up (DestinationRefused)."""
    try:
        yield
    except SlackApiError as exc:
        error = _error_code(exc)
        if _is_transient(exc):
            raise ChannelUnavailable(f"Slack {method} failed for now: {error}") from exc
        raise DestinationRefused(f"Slack refused {method}: {error}") from exc
    except (SlackRequestError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ChannelUnavailable(f"Slack {method} failed: {type(exc).__name__}") from exc
