"""Run Python code inside a real sandbox built exactly as the host builds it for a session."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import textwrap
from typing import Any

from nanoclaw.host.app import Host
from nanoclaw.sandbox.attach import SlotPoint
from nanoclaw.sandbox.base import Launch, Runtime, SandboxSpec


def run_in_sandbox(host: Host, session_id: str, code: str, timeout: float = 30) -> dict[str, Any]:
    """The probe prints one JSON object; returns it."""
    out = run_code(host, session_id, code, timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_code(host: Host, session_id: str, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Python `code` run in the session's sandbox, however it ends.

    On a host with a pool (`pool_size` > 0) the sandbox is built as the pool builds it and the session is
    attached to it after it started, as at adoption (`run_adopted`).
    """
    if host.settings.pool_size > 0:
        return run_adopted(host, session_id, code, timeout)
    spec = host.sessions.sandbox_spec(host.sessions.get(session_id), host.label)
    spec = dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", textwrap.dedent(code)])
    return run_sandbox(host.runtime, spec, timeout)


# What a pooled runner does before its session exists: say it is ready, wait for the host's word, then work
# in the folders the host attached meanwhile (runner/main.py).
_ADOPTION = """import os as _os, sys as _sys
_sys.stdout.write("ready\\n"); _sys.stdout.flush()
if _sys.stdin.readline() != "adopt\\n":
    raise SystemExit("not adopted")
if not _os.path.isfile("/workspace/inbound.db"):  # the session's folder reached the running sandbox
    raise SystemExit("adopted, but /workspace is not the session's folder: " + repr(_os.listdir("/workspace")))
_os.chdir("/workspace/agent")
"""


def run_adopted(host: Host, session_id: str, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Python `code` in a pooled sandbox of the session's group and chat kind, adopted by the session.

    The sandbox starts from the pool's spec (an empty read-only slot as /workspace, the group's uid, mounts
    and limits); once it runs, the host attaches the session folder and its nested mounts by propagation,
    exactly as Pool.adopt does, and tells it to go. Its proxy socket is the session's (the pool's own
    socket binding is tested in tests/integration/test_pool.py).
    """
    session = host.sessions.get(session_id)
    host.sessions.end(session_id)  # the folder exists, checked, before anything of it is mounted
    name = f"probe-{secrets.token_hex(4)}"
    point = SlotPoint(host.pool.dir / name / "ws")
    try:
        spec = host.sessions.slot_spec(session.agent_group_id, host.sessions.channel_type(session_id), host.label,
                                       name, point.path, host.sessions.proxy_socket(session_id, session.agent_group_id),
                                       host.sessions.proxy_token(session_id))
        spec = dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", _ADOPTION + textwrap.dedent(code)])
        launch = host.runtime.launch(spec)
        proc = _popen(launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            assert ready == "ready\n", (ready, proc.stderr.read() if proc.stderr else "")
            host.sessions.attach_session(session, point)
            stdout, stderr = proc.communicate("adopt\n", timeout=timeout)
        finally:
            proc.kill()
            proc.wait()
            launch.cleanup()
    finally:
        point.release()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


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
