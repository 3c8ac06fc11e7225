"""Run Python code inside a real sandbox built exactly as the host builds it for a session."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

from nanoclaw.host.app import Host
from nanoclaw.sandbox.base import Launch, Runtime, SandboxSpec


def run_in_sandbox(host: Host, session_id: str, code: str, timeout: float = 30) -> dict[str, Any]:
    """The probe prints one JSON object; returns it."""
    out = run_code(host, session_id, code, timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_code(host: Host, session_id: str, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Python `code` run in the session's sandbox, however it ends."""
    spec = host.sessions.sandbox_spec(host.sessions.get(session_id), host.label)
    spec = dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", textwrap.dedent(code)])
    return run_sandbox(host.runtime, spec, timeout)


def popen_sandbox(runtime: Runtime, spec: SandboxSpec, **kwargs: Any) -> subprocess.Popen[str]:
    """Start a sandbox the way the runtime starts runners, without a host around it."""
    return _popen(runtime.launch(spec), **kwargs)


def _popen(launch: Launch, **kwargs: Any) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(launch.argv, env=launch.env, preexec_fn=launch.preexec, pass_fds=launch.pass_fds,
                                cwd=launch.cwd, text=True, **kwargs)
    finally:
        for fd in launch.pass_fds:
            os.close(fd)


def run_sandbox(runtime: Runtime, spec: SandboxSpec, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    launch = runtime.launch(spec)
    proc = _popen(launch, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
        launch.cleanup()  # e.g. the sandbox's cgroup
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def session_for(host: Host, group: str = "main", chat: str | None = None) -> str:
    mg = None
    if chat is not None:
        from nanoclaw.db import messaging_groups

        mg = messaging_groups.upsert(host.conn, "fake", chat).id
    return host.sessions.resolve(group, mg, None, "shared" if mg else "agent-shared").id
