"""The agent's own tools for providers without them (Claude Code brings its own): shell, files, web.

They run inside the sandbox, so they can only touch what the sandbox sees; web
requests leave through the host's proxy (HTTPS_PROXY).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from nanoclaw.runner.tools import Tool, ToolContext, ToolError

OUTPUT_CAP = 30_000
BASH_TIMEOUT = 120.0


def _cap(text: str) -> str:
    if len(text) <= OUTPUT_CAP:
        return text
    return text[:OUTPUT_CAP] + f"\n… [{len(text) - OUTPUT_CAP} more characters cut]"


def _path(raw: str) -> Path:
    return Path(raw if os.path.isabs(raw) else os.path.join(os.getcwd(), raw))


async def bash(ctx: ToolContext, args: dict[str, Any]) -> str:
    timeout = min(float(args.get("timeout_seconds", BASH_TIMEOUT)), 600.0)
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", args["command"], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return f"Timed out after {timeout:.0f} s (killed)."
    return _cap(out.decode(errors="replace")) + f"\n[exit code {proc.returncode}]"


async def read_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(args["path"])
    try:
        return _cap(path.read_text(errors="replace"))
    except OSError as exc:
        raise ToolError(f"cannot read {args['path']}: {exc.strerror}") from exc


async def write_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(args["path"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(args["content"])
    except OSError as exc:
        raise ToolError(f"cannot write {args['path']}: {exc.strerror}") from exc
    return f"Wrote {len(args['content'])} characters to {args['path']}."


async def edit_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(args["path"])
    try:
        text = path.read_text()
    except OSError as exc:
        raise ToolError(f"cannot read {args['path']}: {exc.strerror}") from exc
    count = text.count(args["old_text"])
    if count != 1:
        raise ToolError(f"old_text must occur exactly once in {args['path']} (found {count} times)")
    try:
        path.write_text(text.replace(args["old_text"], args["new_text"]))
    except OSError as exc:
        raise ToolError(f"cannot write {args['path']}: {exc.strerror}") from exc
    return f"Edited {args['path']}."


async def list_files(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(args.get("path") or ".")
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ToolError(f"cannot list {args.get('path', '.')}: {exc.strerror}") from exc
    return _cap("\n".join(e.name + ("/" if e.is_dir() else "") for e in entries) or "(empty)")


async def web_fetch(ctx: ToolContext, args: dict[str, Any]) -> str:
    import httpx  # only when used: the runner's cold start pays for imports

    try:
        async with httpx.AsyncClient(timeout=30, follow_redirects=True, trust_env=True) as client:
            response = await client.get(args["url"])
    except httpx.HTTPError as exc:
        raise ToolError(f"fetch failed: {type(exc).__name__}: {exc}") from exc
    return _cap(f"HTTP {response.status_code}\n{response.text}")


async def web_search(ctx: ToolContext, args: dict[str, Any]) -> str:
    url = os.environ.get("NANOCLAW_SEARCH_URL")
    if not url:
        return "Web search is not configured on this assistant (the owner can set NANOCLAW_SEARCH_URL)."
    import httpx

    try:
        async with httpx.AsyncClient(timeout=30, trust_env=True) as client:
            response = await client.get(url, params={"q": args["query"]})
    except httpx.HTTPError as exc:
        raise ToolError(f"search failed: {type(exc).__name__}: {exc}") from exc
    return _cap(response.text)


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def _s(desc: str) -> dict[str, Any]:
    return {"type": "string", "description": desc}


AGENT_TOOLS: list[Tool] = [
    Tool("bash", "Run a shell command in your sandbox (cwd /workspace/agent). Output is capped; default timeout 120 s.",
         _obj({"command": _s("The command."), "timeout_seconds": {"type": "number", "description": "At most 600."}},
              ["command"]), bash),
    Tool("read_file", "Read a text file.", _obj({"path": _s("Path, relative to /workspace/agent or absolute.")},
                                               ["path"]), read_file),
    Tool("write_file", "Create or overwrite a text file.",
         _obj({"path": _s("Path."), "content": _s("The whole new content.")}, ["path", "content"]), write_file),
    Tool("edit_file", "Replace one exact occurrence of old_text with new_text in a file.",
         _obj({"path": _s("Path."), "old_text": _s("Text that occurs exactly once."), "new_text": _s("Replacement.")},
              ["path", "old_text", "new_text"]), edit_file),
    Tool("list_files", "List a directory.", _obj({"path": _s("Directory; default the working directory.")}, []),
         list_files),
    Tool("web_fetch", "Fetch a URL (through the owner's proxy) and return its text.",
         _obj({"url": _s("http(s) URL.")}, ["url"]), web_fetch),
    Tool("web_search", "Search the web.", _obj({"query": _s("Search terms.")}, ["query"]), web_search),
]
