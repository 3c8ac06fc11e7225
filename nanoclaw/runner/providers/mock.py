"""Deterministic provider for tests and first runs without a model key.

It echoes what the agent received, context included. Tests script it with
directives in the message text:

  [mock:sleep=SECONDS]   await before answering (the runner stays responsive)
  [mock:hang=SECONDS]    block the whole process (heartbeats stop)
  [mock:crash]           exit abruptly before answering, every time
  [mock:crash-once]      exit abruptly the first time this message is seen
  [mock:silent]          answer nothing
  [mock:reply=TEXT]      answer exactly TEXT
  [mock:say=TEXT]        send TEXT mid-turn, before the final answer (not again when a run of this turn
                         that a crash interrupted had sent it: the model reads what it already sent)
  [mock:repeat=TEXT]     send TEXT mid-turn even when an interrupted run had sent it (a model that repeats)
  [mock:card=TEXT]       send a card with TEXT and one button, mid-turn (not again, as say)
  [mock:file=NAME]       write NAME in the agent folder and send it, mid-turn (not again, as say)
  [mock:stream=N/SECONDS] write the answer as N tokens over SECONDS (a model streaming); the answer is the
                         reply (or echo) when given, else N numbered words. Stop interrupts it.
  [mock:send=NAME|TEXT]  send TEXT to the destination NAME
  [mock:tool=NAME:JSON]  call NanoClaw tool NAME with JSON arguments; the answer is its result
  [mock:read=PATH]       answer with the file's start, as seen inside the sandbox
  [mock:sh=COMMAND]      run COMMAND with /bin/sh inside the sandbox, as an agent's shell tool would;
                         the answer is its exit code and output (tests of what a hostile agent can do)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter

from nanoclaw.runner.providers.base import Provider, Turn
from nanoclaw.runner.tools import ToolError

_KINDS = {"say": "chat", "card": "card", "file": "file"}
_DIRECTIVE = re.compile(r"\[mock:([a-z-]+)(?:=((?:[^\[\]]|\[[^\]]*\])*))?\]")


class MockProvider(Provider):
    name = "mock"

    async def run_turn(self, turn: Turn) -> str | None:
        reply: str | None = None
        silent = False
        # What the interrupted runs of this turn sent, as a model reads it in its prompt.
        sent = Counter((row.kind, row.text or "") for row in turn.already_sent)
        stream: tuple[int, float] | None = None
        for message in turn.messages:
            if not message.trigger:
                continue
            for verb, arg in _DIRECTIVE.findall(message.text):
                if verb == "sleep":
                    await asyncio.sleep(float(arg))
                elif verb == "hang":
                    time.sleep(float(arg))
                elif verb == "crash":
                    os._exit(17)
                elif verb == "crash-once":
                    key = f"mock.crashed.{message.seq}"
                    if not self.context.get_state(key):
                        self.context.set_state(key, "1")
                        os._exit(17)
                elif verb == "silent":
                    silent = True
                elif verb == "reply":
                    reply = arg
                elif verb in ("say", "card", "file") and _take(sent, _KINDS[verb], arg):
                    continue  # already sent before the interruption
                elif verb == "stream":
                    count, _, seconds = arg.partition("/")
                    stream = (max(1, min(int(count), 100_000)), max(0.0, float(seconds or 0)))
                elif verb in ("say", "repeat"):
                    await self._tool("send_message", {"text": arg})
                elif verb == "card":
                    await self._tool("send_card", {"text": arg, "buttons": ["OK"]})
                elif verb == "file":
                    name = os.path.basename(arg) or "file.txt"
                    with open(name, "w") as f:
                        f.write(f"the file {name}\n")
                    await self._tool("send_file", {"path": name, "caption": arg})
                elif verb == "send":
                    name, _, text = arg.partition("|")
                    await self._tool("send_message", {"text": text, "to": name})
                elif verb == "read":
                    try:
                        with open(arg, "rb") as f:
                            reply = f.read(4000).decode(errors="replace")
                    except OSError as exc:
                        reply = f"Error: {exc.strerror}"
                elif verb == "sh":
                    reply = await self._shell(arg)
                elif verb == "tool":
                    name, _, raw = arg.partition(":")
                    reply = await self._tool(name, json.loads(raw or "{}"))
        if silent:
            return None
        if stream is not None:
            return await self._stream(reply, *stream)
        return reply if reply is not None else self.echo(turn)

    @staticmethod
    async def _shell(command: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
        except asyncio.TimeoutError:
            proc.kill()
            return "exit timeout"
        return f"exit {proc.returncode}\n{out.decode(errors='replace')[-4000:]}"

    async def _stream(self, text: str | None, count: int, seconds: float) -> str:
        """Tokens at an even pace, each shown as it comes (cancelled at once by a stop)."""
        if text:
            size = max(1, -(-len(text) // count))
            tokens = [text[i:i + size] for i in range(0, len(text), size)]
        else:
            tokens = [f"word{i} " for i in range(1, count + 1)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        written = ""
        for i, token in enumerate(tokens):
            delay = start + seconds * i / len(tokens) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            written += token
            self.context.answer.update(written)
        return written.strip()

    async def _tool(self, name: str, args: dict[str, object]) -> str:
        tool = next((t for t in self.context.tools if t.name == name), None)
        if tool is None:
            return f"Error: no tool {name}"
        try:
            return await tool.call(self.context.tool_context, args)
        except ToolError as exc:
            return f"Error: {exc}"

    async def command(self, name: str) -> str:
        if name == "clear":
            self.context.set_state("mock.cleared", "1")
            return "Started a fresh conversation."
        return f"/{name} done (mock)."

    def echo(self, turn: Turn) -> str:
        name = self.context.config.assistant_name
        count = len(turn.messages)
        lines = [f"[mock] {name} received {count} message{'s' if count != 1 else ''}:"]
        for m in turn.messages:
            who = m.sender_name or m.sender_id or "unknown"
            mark = " (context)" if not m.trigger else ""
            lines.append(f"- {who}{mark}: {m.text}")
            for f in m.payload.get("attachments") or []:
                lines.append(f"  attachment {f.get('name')} ({f.get('size')} bytes) at {f.get('path', f.get('error'))}")
        return "\n".join(lines)


def _take(sent: Counter[tuple[str, str]], kind: str, text: str) -> bool:
    """Whether `text` of `kind` was among what was already sent (each earlier message accounts for one)."""
    if sent[(kind, text)] <= 0:
        return False
    sent[(kind, text)] -= 1
    return True
