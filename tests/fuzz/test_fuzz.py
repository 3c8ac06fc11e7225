"""Property-based fuzzing of what untrusted input reaches: text from people, rows from runners, tool
arguments from models, lines on the local socket, paths asked of the mount allow-list. NANOCLAW_FUZZ_EXAMPLES=10000 for the nightly size."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanoclaw.host import commands
from nanoclaw.host.api import LocalApi
from nanoclaw.host.router import clean_text
from nanoclaw.protocol.formatting import format_messages, strip_internal
from nanoclaw.protocol.messages import InboundMessage, OutboundMessage, Route
from nanoclaw.runner.agent_tools import AGENT_TOOLS
from nanoclaw.runner.tools import TOOLS, ToolError, validate
from nanoclaw.sandbox.mounts import Allowlist, MountRefused

EXAMPLES = int(os.environ.get("NANOCLAW_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@fuzz
@given(st.lists(st.tuples(st.text(), st.text(), st.one_of(st.none(), st.text()), st.booleans()), max_size=5))
def test_xml_format_is_well_formed_and_lossless(rows: list[tuple[str, str, str | None, bool]]) -> None:
    messages = [
        InboundMessage(2 * i + 2, f"fake:c:{i}", "chat", trigger, clean_text(text), sender_name=clean_text(sender),
                       route=Route("fake", "c", clean_text(thread) if thread else None))
        for i, (text, sender, thread, trigger) in enumerate(rows)
    ]
    tree = ET.fromstring(format_messages(messages))
    assert [m.text or "" for m in tree] == [m.text for m in messages]
    assert [m.get("sender") for m in tree] == [m.sender_name or "unknown" for m in messages]


@fuzz
@given(st.text())
def test_strip_internal_leaves_no_internal_notes(text: str) -> None:
    once = strip_internal(text)
    assert "<internal>" not in once.lower() and strip_internal(once) == once


@fuzz
@given(st.text())
def test_command_parser_never_fails(text: str) -> None:
    command = commands.parse(text)
    assert command is None or command.name in {**commands.HOST_COMMANDS, **commands.PROVIDER_COMMANDS}


@fuzz
@given(st.sampled_from([*TOOLS, *AGENT_TOOLS]), st.dictionaries(st.text(max_size=12), json_values, max_size=5))
def test_tool_argument_validation_only_ever_refuses_clearly(tool, args: dict) -> None:
    try:
        validate(tool.schema, args)
    except ToolError as exc:
        assert str(exc)


@fuzz
@given(st.text(), st.binary())
def test_clean_text_accepts_anything(text: str, raw: bytes) -> None:
    for value in (text, raw.decode("utf-8", "surrogateescape")):
        cleaned = clean_text(value)
        cleaned.encode("utf-8")  # always storable
        assert "\x00" not in cleaned


@fuzz
@given(st.one_of(st.text(), json_values.map(json.dumps)), st.sampled_from(["chat", "card", "x" * 3]))
def test_runner_rows_with_junk_payloads_are_read_safely(payload: str, kind: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row = conn.execute(
        "SELECT 1 AS seq, 'id' AS id, ? AS kind, NULL AS text, 'fake' AS channel_type, 'c' AS platform_id,"
        " NULL AS thread_id, NULL AS to_name, NULL AS in_reply_to, ? AS payload, 0 AS created_at", (kind, payload)
    ).fetchone()
    message = OutboundMessage.from_row(row)
    assert isinstance(message.payload, dict)


@fuzz
@given(st.binary(max_size=300))
def test_local_api_answers_any_line(line: bytes) -> None:
    api = LocalApi(path=None)  # type: ignore[arg-type]

    async def ping(request: dict, conn: object) -> dict:
        return {"ok": True}

    api.register("ping", ping)
    reply = asyncio.run(api._dispatch(line, None))  # type: ignore[arg-type]
    assert reply is not None and isinstance(reply.get("ok"), bool)


_TREE: dict[str, object] = {}


def _mount_tree() -> tuple[Path, Allowlist]:
    """A small owner's tree with secrets, allowed roots and links, built once per process."""
    if not _TREE:
        root = Path(tempfile.mkdtemp(prefix="nanoclaw-fuzz-mounts-"))
        for folder in ("home/projects/a/b", "home/projects/.ssh", "home/photos/2024", "home/.aws", "home/.env.local",
                       "home/keys/deploy.pem", "nanoclaw-home/groups", "config/nanoclaw"):
            (root / folder).mkdir(parents=True)
        (root / "home/photos/to-ssh").symlink_to(root / "home/projects/.ssh")
        (root / "home/photos/up").symlink_to(root / "home")
        (root / "home/photos/loop").symlink_to(root / "home/photos/loop")
        allowed = root / "config/nanoclaw/mount-allowlist.json"
        allowed.write_text(json.dumps({"allowed": [str(root / "home/photos"), {"path": str(root / "home/projects/a"),
                                                                                "writable": True}]}))
        _TREE.update(root=root, allowlist=Allowlist.load(allowed, protected=(root / "nanoclaw-home",)))
    return _TREE["root"], _TREE["allowlist"]  # type: ignore[return-value]


_PIECES = st.sampled_from(["home", "photos", "projects", "a", "b", ".ssh", ".aws", ".env.local", "keys",
                           "deploy.pem", "2024", "to-ssh", "up", "loop", "..", ".", "", "nanoclaw-home",
                           "config", "nanoclaw", "groups", "x y", "\u00e9", "*", "~"])


@fuzz
@given(st.lists(_PIECES, max_size=7), st.booleans(), st.booleans())
def test_mount_allow_list_grants_only_allowed_unblocked_folders(pieces: list[str], absolute: bool, writable: bool) -> None:
    root, allowlist = _mount_tree()
    raw = (str(root) + "/" if absolute else "") + "/".join(pieces)
    try:
        granted = allowlist.check(raw, writable=writable)
    except MountRefused as exc:
        assert str(exc)
        return
    real = Path(os.path.realpath(granted))
    assert real == granted and real.is_dir()
    roots = [root / "home/photos", root / "home/projects/a"]
    assert any(real == r or r in real.parents for r in roots)
    assert not writable or root / "home/projects/a" in (real, *real.parents)
    assert not {".ssh", ".aws", ".env.local", "deploy.pem"} & set(real.parts)


# -- what channels do with the agent's text and people's file names ---------------------------------

from nanoclaw.channels import text as channel_text  # noqa: E402
from nanoclaw.host.attachments import safe_file_name  # noqa: E402

markdownish = st.text(alphabet=st.sampled_from(list("ab *_~`#>-1).[]()<>&\n\\ ")) | st.characters(), max_size=300)


@fuzz
@given(markdownish, st.integers(min_value=1, max_value=120))
def test_split_message_keeps_every_word_in_order_within_the_limit(text: str, limit: int) -> None:
    pieces = channel_text.split_message(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert "".join(pieces).split() == text.split() or "".join("".join(pieces).split()) == "".join(text.split())


@fuzz
@given(markdownish)
def test_markdown_dialects_never_fail_and_html_ones_never_pass_markup_through(text: str) -> None:
    for convert in (channel_text.to_slack, channel_text.to_whatsapp, channel_text.to_plain):
        assert isinstance(convert(text), str)
    from nanoclaw.channels.web_html import render as web_html

    for convert in (channel_text.to_telegram_html, channel_text.to_matrix_html, web_html):
        html = convert(text)
        tags = {t.split()[0].strip("/").lower() for t in __import__("re").findall(r"<(/?[a-zA-Z][^>]*)>", html)}
        assert tags <= {"b", "i", "s", "code", "pre", "a", "strong", "em", "del", "br", "p", "ul", "ol", "li",
                        "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "img", "span", "table", "thead",
                        "tbody", "tr", "th", "td"}, (text, html)
        assert "<script" not in html.lower() and "javascript:" not in html.lower()
        assert not __import__("re").search(r"<[^>]*\son\w+\s*=", html), (text, html)  # no event handler attribute


@fuzz
@given(st.text(max_size=400))
def test_safe_file_names_are_one_harmless_component(name: str) -> None:
    safe = safe_file_name(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..") and not safe.startswith(".")
    assert len(safe.encode("utf-8")) <= 200
    assert all(c.isprintable() for c in safe)


# -- what Teams, Google Chat and Webex deliver to their webhooks -------------------------------------

from nanoclaw.channels import adaptive_cards, googlechat_cards  # noqa: E402
from nanoclaw.channels.teams import TeamsChannel  # noqa: E402
from nanoclaw.channels.webex import WebexChannel, signature_ok  # noqa: E402
from tests.channels.harness import RecordingHost  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

_SETTINGS = make_settings(Path(tempfile.mkdtemp(prefix="nanoclaw-fuzz-channels-")))
json_objects = st.dictionaries(st.sampled_from(["type", "id", "text", "from", "conversation", "value", "entities",
                                                "attachments", "recipient", "nanoclaw", "token", "card", "label",
                                                "common", "message", "space", "action", "roomId", "personId",
                                                "nanoclaw_value", "name", "replyToId"]), json_values, max_size=8)


@fuzz
@given(st.one_of(json_objects, json_values))
def test_card_presses_are_read_or_refused_never_crash(data: object) -> None:
    press = adaptive_cards.parse_press(data)
    assert press is None or press.kind in ("answer", "credential", "refuse", "form")
    adaptive_cards.take_value(data)
    if isinstance(data, dict):
        click = googlechat_cards.parse_click(data)
        assert click is None or click.function in (googlechat_cards.ANSWER, googlechat_cards.FORM,
                                                   googlechat_cards.SAVE, googlechat_cards.REFUSE)
        googlechat_cards.take_value(data)
        googlechat_cards.answered(data.get("message"), "done")


@fuzz
@given(st.one_of(json_objects, json_values))
def test_teams_activity_parser_passes_on_or_drops_never_crashes(data: object) -> None:
    from microsoft_agents.activity import Activity
    import pydantic

    host = RecordingHost(_SETTINGS)
    channel = TeamsChannel(host)
    try:
        activity = Activity.model_validate(data)
    except (ValueError, pydantic.ValidationError):
        return
    if activity.type == "message" and activity.conversation is not None and activity.conversation.id:
        try:
            asyncio.run(channel._on_message(activity))
        except (ValueError, TypeError):  # pydantic's own refusals of odd nested shapes
            return
        assert all(e.channel_type == "teams" and e.message_id for e in host.events)


@fuzz
@given(st.binary(max_size=200), st.text(max_size=80))
def test_webex_signature_check_never_accepts_a_guess(body: bytes, header: str) -> None:
    import hashlib
    import hmac as _hmac

    expected = _hmac.new(b"secret", body, hashlib.sha1).hexdigest()
    assert signature_ok("secret", body, header) == (header.strip().lower() == expected)


@fuzz
@given(st.one_of(json_objects, json_values))
def test_webex_message_parser_passes_on_or_drops_never_crashes(data: object) -> None:
    host = RecordingHost(_SETTINGS)
    channel = WebexChannel(host)
    channel._me = "me"
    channel._names = {k: None for k in ("", "me")}
    if not isinstance(data, dict):
        return
    data.pop("files", None)  # downloads need the server; their parsing is covered by the channel tests
    data.pop("personId", None) if not isinstance(data.get("personId"), str) else None
    for key in ("personId", "roomId"):
        if isinstance(data.get(key), str):
            channel._names[data[key]] = None
    event = asyncio.run(channel._to_event(data))
    assert event is None or (event.platform_id == data["roomId"] and event.message_id == data["id"])
# -- what the Linear, Resend and iMessage channels take from outside: webhooks, received mail, chat.db rows ----

import time  # noqa: E402
from typing import Any  # noqa: E402

from nanoclaw.channels import imessage as imessage_channel  # noqa: E402
from nanoclaw.channels import linear as linear_channel  # noqa: E402
from nanoclaw.channels import resend as resend_channel  # noqa: E402
from nanoclaw.channels.base import InboundEvent, IngestResult  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fakes.linear_server import sign as linear_sign  # noqa: E402
from tests.fakes.messages_db import attributed_body  # noqa: E402
from tests.fakes.resend_server import svix_headers  # noqa: E402

_SECRET = "fuzz-secret"
_WHSEC = "whsec_ZnV6ei13ZWJob29rLXNlY3JldA=="


class _Host:
    """The host end a channel's webhook handler needs: settings and a receive that records."""

    home: Path | None = None  # one per process: the channels keep small state files there

    def __init__(self, extra: dict[str, str] | None = None) -> None:
        if _Host.home is None:
            _Host.home = Path(tempfile.mkdtemp(prefix="nanoclaw-fuzz-channel-"))
        self.settings = make_settings(_Host.home, extra=extra or {})
        self.events: list[InboundEvent] = []

    async def receive(self, event: InboundEvent) -> IngestResult:
        self.events.append(event)
        return IngestResult(True, ("s1",), triggered=True)


class _Request:
    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self._body, self.headers, self.remote, self.method = body, headers, "127.0.0.1", "POST"

    async def read(self) -> bytes:
        return self._body


def _check_events(events: list[InboundEvent], channel: str) -> None:
    for event in events:
        assert event.channel_type == channel and isinstance(event.text, str) and event.message_id
        assert all(isinstance(v, str) for v in (event.platform_id, event.sender_id))


linear_payloads = st.fixed_dictionaries({
    "type": st.sampled_from(["Comment", "Issue", "Project", 7]), "action": st.sampled_from(["create", "update", None]),
    "data": json_values | st.fixed_dictionaries({
        "id": st.text(max_size=8) | st.integers(), "body": st.text(max_size=60) | st.none(),
        "issueId": st.text(max_size=8) | st.none(), "userId": st.sampled_from(["u1", "me", None]),
        "title": st.text(max_size=20), "teamId": st.text(max_size=8) | st.none(),
        "issue": st.none() | st.fixed_dictionaries({"id": st.text(max_size=8), "teamId": st.text(max_size=8)}),
        "botActor": json_values}),
    "actor": json_values, "webhookTimestamp": st.sampled_from(["now", "old", None, "x"]),
})


@fuzz
@given(linear_payloads, st.sampled_from(["signed", "unsigned", "wrong"]), st.binary(max_size=40))
def test_linear_webhook_answers_any_delivery_and_passes_only_signed_fresh_ones(
    payload: dict[str, Any], signing: str, junk: bytes
) -> None:
    host = _Host()
    channel = linear_channel.LinearChannel(host)
    channel._secret, channel._me = _SECRET, {"id": "me", "name": "Andy", "displayName": "andy"}
    stamp = payload["webhookTimestamp"]
    payload = {**payload, "webhookTimestamp": {"now": int(time.time() * 1000), "old": 1_600_000_000_000}.get(stamp, stamp)}
    for body in (json.dumps(payload).encode(), junk):
        signature = {"signed": linear_sign(_SECRET, body), "wrong": linear_sign("other", body)}.get(signing)
        response = asyncio.run(channel._on_webhook(_Request(body, {"Linear-Signature": signature} if signature else {})))
        assert response.status in (200, 400, 401)
        if signing != "signed":
            assert response.status == 401
        elif stamp != "now":
            assert response.status in (400, 401)  # not JSON, or JSON outside the replay window
    if signing != "signed" or stamp != "now":
        assert host.events == []
    _check_events(host.events, "linear")
    assert all(e.sender_id != "me" for e in host.events)  # never our own writing


resend_mails = st.fixed_dictionaries({
    "from": st.text(max_size=30) | st.sampled_from(["Alice <alice@example.org>", "andy@example.com", "x@y"]),
    "to": json_values | st.just(["andy@inbound.example.com"]), "subject": st.text(max_size=30) | st.none(),
    "text": st.text(max_size=80) | st.none(), "html": st.text(max_size=80) | st.none(),
    "headers": json_values | st.dictionaries(st.sampled_from(["auto-submitted", "references", "in-reply-to"]),
                                             st.text(max_size=20)),
    "message_id": st.text(max_size=20) | st.none(), "created_at": st.text(max_size=10), "attachments": st.just([]),
})


@fuzz
@given(resend_mails, st.sampled_from(["email.received", "email.sent", None]), json_values, st.booleans())
def test_resend_webhook_and_mail_reading_take_any_input(mail: dict[str, Any], kind: Any, data: Any,
                                                        signed: bool) -> None:
    host = _Host({"RESEND_API_URL": "http://127.0.0.1:9"})  # nothing listens there: fetching fails transiently
    channel = resend_channel.ResendChannel(host)
    channel._verifier = resend_channel.Webhook(_WHSEC)
    channel._own = {"andy@example.com"}
    try:
        event = asyncio.run(channel._event(mail, "id-1"))
    except resend_channel._Malformed:
        event = None
    if event is not None:
        _check_events([event], "resend")
        assert event.sender_id not in channel._own and event.is_dm
    body = json.dumps({"type": kind, "data": data}).encode()
    headers = svix_headers(_WHSEC, body) if signed else {"svix-id": "msg_1", "svix-signature": "v1,AAAA"}
    response = asyncio.run(channel._on_webhook(_Request(body, headers)))  # type: ignore[arg-type]
    assert response.status in ((200, 400, 503) if signed else (401,))


imessage_rows = st.fixed_dictionaries({
    "is_from_me": st.sampled_from([0, 1, None]), "item_type": st.sampled_from([0, 1, None]),
    "associated_message_type": st.sampled_from([0, 2001, None]),
    "chat": st.sampled_from(["iMessage;+;chat1", "iMessage;-;+1555", None, ""]) | st.text(max_size=10),
    "sender": st.text(max_size=12) | st.none(), "guid": st.text(max_size=12) | st.none(),
    "text": st.text(max_size=60) | st.none() | st.integers(), "attributedBody": st.binary(max_size=80) | st.none(),
    "style": st.sampled_from([43, 45, None]), "display_name": st.text(max_size=10) | st.none(),
    "date": st.integers() | st.none() | st.text(max_size=4),
})


@fuzz
@given(imessage_rows, st.text(max_size=300), st.binary(max_size=200))
def test_imessage_rows_and_attributed_bodies_are_read_safely(row: dict[str, Any], text: str, junk: bytes) -> None:
    event = imessage_channel.row_event(row, [])
    if event is not None:
        _check_events([event], "imessage")
        assert not row["is_from_me"] and event.text and "\ufffc" not in event.text
    assert imessage_channel.attributed_text(attributed_body(text)) == text
    decoded = imessage_channel.attributed_text(junk)
    assert decoded is None or isinstance(decoded, str)
