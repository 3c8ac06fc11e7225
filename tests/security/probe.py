"""Run Python code inside a real sandbox built exactly as the host builds it for a session."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from typing import Any

from nanoclaw.host.app import Host
from nanoclaw.sandbox.bwrap import LAUNCH_ENV


def run_in_sandbox(host: Host, session_id: str, code: str, timeout: float = 30) -> dict[str, Any]:
    """The probe prints one JSON object; returns it."""
    spec = host.sessions.sandbox_spec(host.sessions.get(session_id), host.label)
    spec = dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", textwrap.dedent(code)])
    out = subprocess.run(host.runtime.command(spec), capture_output=True, text=True, timeout=timeout, env=LAUNCH_ENV)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def session_for(host: Host, group: str = "main", chat: str | None = None) -> str:
    mg = None
    if chat is not None:
        from nanoclaw.db import messaging_groups

        mg = messaging_groups.upsert(host.conn, "fake", chat).id
    return host.sessions.resolve(group, mg, None, "shared" if mg else "agent-shared").id
