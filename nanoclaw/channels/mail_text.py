"""What the mail channels share about mail as text: reading a mail's new part, telling a program's mail
from a person's, and the subject and HTML of what the assistant sends.

Used by the email channel (IMAP/SMTP) and the Resend channel (its API), so both read and write mail the
same way. Standard library and markdown-it only: no mail transport here.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Mapping

from markdown_it import MarkdownIt

from nanoclaw.channels.text import to_plain

_md = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
_NO_REPLY = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+.-].*)?$", re.I)
_ATTRIBUTION = re.compile(r"^On\s.+\swrote:$", re.S)  # "On Mon, 1 Jan 2024, Alice <a@x> wrote:"
_OUTLOOK_QUOTE = re.compile(r"^-{2,}\s*Original Message\s*-{2,}$", re.I)


class _HtmlText(HTMLParser):
    """Visible text of an HTML mail; quoted history (<blockquote>) and scripts left out."""

    _SKIP = {"blockquote", "script", "style", "head", "title"}
    _BLOCK = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "li":
            self.parts.append("\n• ")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        text = re.sub(r" *\n *", "\n", "".join(self.parts))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser.text()


def strip_quotes(text: str) -> str:
    """The new part of a reply: the "On … wrote:" line and everything after it, and "> " lines, removed."""
    lines = text.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        s = line.strip()
        # Gmail and Apple Mail wrap a long attribution line over two lines.
        two = f"{s} {lines[i + 1].strip()}" if i + 1 < len(lines) else s
        if s.startswith("On ") and (_ATTRIBUTION.match(s) or _ATTRIBUTION.match(two)) or _OUTLOOK_QUOTE.match(s):
            break
        if not s.startswith(">"):
            kept.append(line.rstrip())
    new = "\n".join(kept).strip()
    return new or text.strip()  # a mail that is all quote (a forward): keep it


def automated(headers: Mapping[str, str], sender: str, listed: bool = False) -> bool:
    """Written by a program (auto-reply, bounce, newsletter, another bot): never answered unless allowed.

    `headers` may name headers in any case; `listed`: the mail came through a discussion list.
    """
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    auto = h.get("auto-submitted", "no").split(";")[0].strip().lower()
    precedence = h.get("precedence", "").strip().lower()
    return (
        auto not in ("no", "")
        or precedence in ("bulk", "junk")
        or precedence == "list" and not listed  # discussion lists mark every person's post "list"
        or "x-auto-response-suppress" in h
        or h.get("return-path", "").strip() == "<>"
        or _NO_REPLY.match(sender.partition("@")[0]) is not None
    )


def is_reply_subject(subject: str) -> bool:
    return re.match(r"^\s*(re|aw|sv)\s*:", subject, re.I) is not None


def reply_subject(subject: str) -> str:
    """The subject of an answer in the same mail thread."""
    return subject if is_reply_subject(subject) else f"Re: {subject}".strip()


def subject_for(text: str) -> str:
    """Subject of a mail that starts a conversation: the first line of its text, shortened."""
    first = next((line for line in to_plain(text).splitlines() if line.strip()), "").strip()
    return first if len(first) <= 70 else first[:69].rstrip() + "…"


def to_mail_html(markdown: str) -> str:
    """The HTML part of a mail from the agent's Markdown (raw HTML in it stays text; tables kept)."""
    return _md.render(markdown)
