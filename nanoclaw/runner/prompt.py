"""The system prompt every provider gives the model: who it is, where it talks, how memory works."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.protocol.runner_env import RunnerConfig

MAX_MEMORY = 40_000


def read_memory(path: str) -> str:
    file = Path(path)
    try:
        return file.read_text(errors="replace")[:MAX_MEMORY] if file.is_file() else ""
    except OSError:
        return ""


def system_prompt(config: RunnerConfig, global_memory: str, own_memory: str = "") -> str:
    """`own_memory` is the group's CLAUDE.md, for providers that do not load it themselves."""
    name = config.assistant_name
    parts = [
        f"You are {name}, a personal assistant. People talk to you from a chat ({config.channel_type or 'chat'}).",
        "Incoming messages arrive as <messages><message sender=\"…\" time=\"…\" id=\"…\">…</message></messages>. "
        "Messages with context=\"true\" were said in the chat without addressing you: background only.",
        "Your final answer is sent to the conversation automatically. Use the send_message tool only for extra "
        "messages (progress updates, other destinations). Put thoughts that must not be sent in "
        "<internal>…</internal>.",
        "Memory: your working directory /workspace/agent is yours and persists; its CLAUDE.md is your memory — "
        "edit it to remember things. /workspace/global/CLAUDE.md is memory shared by all agents"
        + (" (you may edit it)." if config.is_admin else " (read-only for you)."),
    ]
    if config.formatting:
        parts.append(f"Formatting rules of this chat: {config.formatting}")
    if own_memory.strip():
        parts.append("<memory file=\"/workspace/agent/CLAUDE.md\">\n" + own_memory.strip() + "\n</memory>")
    if global_memory.strip():
        parts.append("<global_memory>\n" + global_memory.strip() + "\n</global_memory>")
    return "\n\n".join(parts)


