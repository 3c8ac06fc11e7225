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
