"""Every NanoClaw tool is run by some test through a real sandbox and a provider (not only named)."""

from __future__ import annotations

import re
from pathlib import Path

from nanoclaw.runner.tools import tool_names

TESTS = Path(__file__).resolve().parents[1]


def _sandbox_test_sources() -> str:
    """The text of every test module that runs in a sandbox (marked `sandbox`)."""
    found = [p.read_text() for p in TESTS.rglob("test_*.py") if "pytest.mark.sandbox" in p.read_text()]
    assert found, "no sandbox test modules found"
    return "\n".join(found)


def test_every_tool_is_called_by_a_sandbox_test() -> None:
    sources = _sandbox_test_sources()
    # How a test makes an agent call a tool: the mock's directive helper, or a scripted model's tool call.
    called = {name for name in tool_names()
              if re.search(rf'tool\(\s*"{name}"|mock:tool={name}:|mcp__nanoclaw__{name}\b', sources)}
    assert called == set(tool_names()), f"tools no sandbox test calls: {sorted(set(tool_names()) - called)}"
