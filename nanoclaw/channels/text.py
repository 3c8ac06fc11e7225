"""Shaping the agent's text for a platform: Markdown converted to its format, long texts split at its limit.

Agents write CommonMark. Each platform has its own dialect (Telegram HTML,
Slack mrkdwn, WhatsApp's *bold*, Matrix HTML, Google Chat, the Markdown subset of
Teams and Webex, plain text); one parser
(markdown-it, raw HTML disabled so nothing the agent writes becomes markup)
feeds a small table of markers per dialect.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

_PRE = re.compile(r"(<pre>.*?</pre>)", re.DOTALL)
_QUOTE_EDGE = re.compile(r"\n*(</?blockquote>)\n*")  # a block element: no line breaks around its tags
_parser: MarkdownIt | None = None


def _md() -> MarkdownIt:
    """The parser, made at the first conversion (a host whose channels send plain text never loads it)."""
    global _parser
    if _parser is None:
        from markdown_it import MarkdownIt

        _parser = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("strikethrough")
    return _parser


def split_message(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word boundary where one is near."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:  # no boundary in the second half: cut hard rather than leave tiny pieces
            cut = limit
        if 0xD800 <= ord(rest[cut - 1]) <= 0xDBFF:  # never split a surrogate pair
            cut -= 1
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ") if cut < limit or rest[cut:cut + 1] in ("\n", " ") else rest[cut:]
    if rest.strip() or not pieces:
        pieces.append(rest.rstrip() if pieces else rest)
    return [p for p in pieces if p] or [""]


def title_from(text: str, limit: int = 80) -> str:
    """A title for a new issue or thread made of a message: its first line without Markdown marks, shortened."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "Message from the assistant")
    line = line.strip().lstrip("#>*-_ ").rstrip("*_ ") or "Message from the assistant"
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Dialect:
    """How one platform marks inline styles; `escape` protects literal text."""

    bold: tuple[str, str]
    italic: tuple[str, str]
    strike: tuple[str, str]
    code: tuple[str, str]
    pre: tuple[str, str]
    link: Callable[[str, str], str]  # (text, href) → marked-up link
    escape: Callable[[str], str] = lambda s: s
    heading: tuple[str, str] | None = None  # defaults to bold
    quote: str = "> "
    bullet: str = "• "
    blockquote: tuple[str, str] | None = None  # an element around quoted blocks (HTML) instead of `quote` marks


def _html_link(text: str, href: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{text}</a>'


TELEGRAM_HTML = Dialect(("<b>", "</b>"), ("<i>", "</i>"), ("<s>", "</s>"), ("<code>", "</code>"),
                        ("<pre>", "</pre>"), _html_link, lambda s: html.escape(s, quote=False))
MATRIX_HTML = Dialect(("<strong>", "</strong>"), ("<em>", "</em>"), ("<del>", "</del>"), ("<code>", "</code>"),
                      ("<pre><code>", "</code></pre>"), _html_link, lambda s: html.escape(s, quote=False),
                      blockquote=("<blockquote>", "</blockquote>"))
SLACK_MRKDWN = Dialect(("*", "*"), ("_", "_"), ("~", "~"), ("`", "`"), ("```\n", "\n```"),
                       lambda t, h: f"<{h}|{t}>" if t != h else f"<{h}>",
                       lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
WHATSAPP = Dialect(("*", "*"), ("_", "_"), ("~", "~"), ("`", "`"), ("```\n", "\n```"),
                   lambda t, h: f"{t} ({h})" if t != h else h)
# Teams and Webex render CommonMark-like Markdown themselves; re-rendering from the parse keeps
# raw HTML out (markdown-it drops it) and turns headings into bold, which both show reliably.
MARKDOWN = Dialect(("**", "**"), ("_", "_"), ("~~", "~~"), ("`", "`"), ("```\n", "\n```"),
                   lambda t, h: f"[{t}]({h})" if t != h else h, heading=("**", "**"), bullet="- ")
# Google Chat's text: *bold* _italic_ ~strike~, links as <url|text>; it has no escape for literal markers.
GOOGLE_CHAT = Dialect(("*", "*"), ("_", "_"), ("~", "~"), ("`", "`"), ("```\n", "\n```"),
                      lambda t, h: f"<{h}|{t}>" if t != h else h)
PLAIN = Dialect(("", ""), ("", ""), ("", ""), ("", ""), ("", ""), lambda t, h: f"{t} ({h})" if t != h else h)


def convert(markdown: str, dialect: Dialect) -> str:
    """Render CommonMark in `dialect`; text that is not Markdown comes out unchanged (escaped as needed)."""
    return _Renderer(dialect).render(_md().parse(markdown)).strip()


def to_telegram_html(markdown: str) -> str:
    return convert(markdown, TELEGRAM_HTML)


def to_matrix_html(markdown: str) -> str:
    """Matrix clients render HTML, where a bare newline is a space: lines break with <br> outside <pre>."""
    parts = _PRE.split(_QUOTE_EDGE.sub(r"\1", convert(markdown, MATRIX_HTML)))
    return "".join(p if p.startswith("<pre>") else p.replace("\n", "<br>") for p in parts)


def to_slack(markdown: str) -> str:
    return convert(markdown, SLACK_MRKDWN)


def to_whatsapp(markdown: str) -> str:
    return convert(markdown, WHATSAPP)


def to_markdown(markdown: str) -> str:
    """Teams and Webex: their own Markdown subset (**bold**, _italic_, ~~strike~~, `code`, [links](url))."""
    return convert(markdown, MARKDOWN)


def to_google_chat(markdown: str) -> str:
    return convert(markdown, GOOGLE_CHAT)


def to_plain(markdown: str) -> str:
    return convert(markdown, PLAIN)


class _Renderer:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.out: list[str] = []
        self.lists: list[int | None] = []  # None: bullets; int: next number
        self.quote_depth = 0

    def render(self, tokens: list[Token]) -> str:
        for tok in tokens:
            self._block(tok)
        return "".join(self.out)

    def _prefix(self) -> str:
        return self.d.quote * self.quote_depth

    def _block(self, tok: Token) -> None:
        d, t = self.d, tok.type
        if t == "inline":
            self.out.append(self._inline(tok.children or []))
        elif t == "paragraph_open" and not tok.hidden:
            self.out.append(self._prefix())
        elif t == "paragraph_close" and not tok.hidden:
            self.out.append("\n" if self.lists else "\n\n")
        elif t == "heading_open":
            self.out.append(self._prefix() + (d.heading or d.bold)[0])
        elif t == "heading_close":
            self.out.append((d.heading or d.bold)[1] + "\n\n")
        elif t in ("bullet_list_open", "ordered_list_open"):
            if self.lists and not "".join(self.out[-1:]).endswith("\n"):
                self.out.append("\n")  # a nested list starts on its own line
            self.lists.append(int(tok.attrGet("start") or 1) if t == "ordered_list_open" else None)
        elif t in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            if not self.lists:
                self.out.append("\n")
        elif t == "list_item_open":
            indent = "  " * (len(self.lists) - 1)
            number = self.lists[-1]
            if number is None:
                self.out.append(self._prefix() + indent + d.bullet)
            else:
                self.out.append(f"{self._prefix()}{indent}{number}{tok.markup or '.'} ")  # keep 1) or 1.
                self.lists[-1] = number + 1
        elif t == "list_item_close":
            if not "".join(self.out[-1:]).endswith("\n"):
                self.out.append("\n")
        elif t == "blockquote_open" and d.blockquote:
            self.out.append(d.blockquote[0])
        elif t == "blockquote_close" and d.blockquote:
            while self.out and self.out[-1].endswith("\n"):  # the quote's last paragraph ends inside it
                self.out[-1] = self.out[-1].rstrip("\n")
            self.out.append(d.blockquote[1] + "\n")
        elif t == "blockquote_open":
            self.quote_depth += 1
        elif t == "blockquote_close":
            self.quote_depth -= 1
        elif t in ("fence", "code_block"):
            self.out.append(d.pre[0] + d.escape(tok.content.rstrip("\n")) + d.pre[1] + "\n\n")
        elif t == "hr":
            self.out.append("———\n\n")

    def _inline(self, children: list[Token]) -> str:
        d = self.d
        parts: list[str] = []
        link_stack: list[tuple[str, int]] = []
        for tok in children:
            t = tok.type
            if t == "text":
                parts.append(d.escape(tok.content))
            elif t == "code_inline":
                parts.append(d.code[0] + d.escape(tok.content) + d.code[1])
            elif t in ("softbreak", "hardbreak"):
                parts.append("\n" + self._prefix())
            elif t == "strong_open":
                parts.append(d.bold[0])
            elif t == "strong_close":
                parts.append(d.bold[1])
            elif t == "em_open":
                parts.append(d.italic[0])
            elif t == "em_close":
                parts.append(d.italic[1])
            elif t == "s_open":
                parts.append(d.strike[0])
            elif t == "s_close":
                parts.append(d.strike[1])
            elif t == "link_open":
                link_stack.append((str(tok.attrGet("href") or ""), len(parts)))
            elif t == "link_close" and link_stack:
                href, start = link_stack.pop()
                inner = "".join(parts[start:])
                del parts[start:]
                parts.append(d.link(inner, href) if href else inner)
            elif t == "image":
                parts.append(d.link(d.escape(tok.content or "image"), str(tok.attrGet("src") or "")))
            elif t == "html_inline":
                parts.append(d.escape(tok.content))
        return "".join(parts)
