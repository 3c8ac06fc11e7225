"""The agent's Markdown as the web chat shows it: HTML that can carry no markup or script of its own.

One parser (markdown-it, raw HTML off: what the agent writes as HTML stays text)
with tables, strikethrough and kept line breaks. Links work only for http(s)
and mailto and open in a new tab without a referrer; images become links (the
page loads nothing from elsewhere); code blocks are highlighted by Pygments into
class-only spans the page's stylesheet colours.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")
MAX_HIGHLIGHT = 50_000  # characters of one code block worth colouring


def safe_url(url: str) -> bool:
    """Only links that cannot run anything: http, https, mailto (no javascript:, data:, vbscript:, file:)."""
    cleaned = "".join(c for c in url if c.isprintable() and not c.isspace())
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    return scheme in SAFE_SCHEMES


def _highlight(code: str, language: str, _attrs: str) -> str:
    if not language or len(code) > MAX_HIGHLIGHT:
        return ""  # markdown-it escapes it plainly
    try:
        lexer = get_lexer_by_name(language.split()[0], stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _FORMATTER)


def _link_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    return self.renderToken(tokens, idx, options, env)  # type: ignore[no-any-return]


def _image(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env) or "image")
    src = str(token.attrGet("src") or "")
    if not safe_url(src):
        return alt
    return (f'<a href="{html.escape(src, quote=True)}" rel="noopener noreferrer nofollow" target="_blank"'
            f' class="image-link">Image: {alt}</a>')


_md = MarkdownIt("commonmark", {"html": False, "breaks": True, "highlight": _highlight})
_md.enable(["table", "strikethrough"])
_md.validateLink = lambda url: safe_url(url)  # type: ignore[method-assign]
_md.add_render_rule("link_open", _link_open)
_md.add_render_rule("image", _image)


def render(markdown: str) -> str:
    """HTML for the web chat (safe to set as innerHTML)."""
    return _md.render(markdown)
