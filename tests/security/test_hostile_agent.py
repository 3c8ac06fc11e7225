"""The hostile-agent battery: the agent attacks the host through the files it can write.

Every test runs a real host with real sandboxes (bwrap and podman). The agent
plants links to a root-only canary (file, folder, names that do not exist
yet), FIFOs, huge sparse files, deep trees and odd names in each folder the
host touches, then makes the host touch them: a runner start, a host restart,
a memory edit, create_agent, send_file, attachments, backup and restore,
install_packages, a full disk. Each asserts that the canary is exactly as
before, that the host still answers, and what the person was told.
docs/security.md has the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from nanoclaw.backup import backup, restore
from nanoclaw.host.router import QUARANTINE_NOTICE
from tests.security.conftest import runtime_settings
from tests.security.hostile import ADMIN_CHAT, GROUP_CHAT, Arena, links, plant, python

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
async def arena(tmp_path: Path, runtime_name: str, request: pytest.FixtureRequest) -> AsyncIterator[Arena]:
    extra = runtime_settings(runtime_name, request)
    runtime, image = str(extra.pop("runtime")), extra.pop("sandbox_image", None)
    arena = await Arena.open(tmp_path, runtime, str(image) if image else None, **extra)
    try:
        yield arena
    finally:
        await arena.close()
    arena.canary_untouched()  # whatever a test did, the canary is checked once more after the host stopped
    if arena.pooled:  # the attacks met adopted sandboxes, not only cold-started ones
        assert arena.adoptions > 0


def tool(tool_name: str, **args: object) -> str:
    return f"[mock:tool={tool_name}:{json.dumps(args)}]"


# -- memory: CLAUDE.md at a runner start -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["file-link", "dir-link", "dangling-link", "fifo", "folder"])
async def test_hostile_memory_file_replaced_then_runner_restarts(arena: Arena, kind: str) -> None:
    """ensure_group_folder once wrote through this link as root (issue 14, finding 1)."""
    out = await arena.agent(plant("/workspace/agent/CLAUDE.md", kind, arena.canary))
    assert out.startswith("exit 0"), out
    await arena.restart_runners()
    await arena.still_answers()
    arena.canary_untouched()
    if kind == "fifo" and not arena.fifos_reach_the_host:
        assert arena.host.folders.read_memory("family").startswith("# Andy")  # the host saw no memory: a fresh one
        return
    told = await arena.owner_told("CLAUDE.md", "family", "was a")
    assert "renamed" in told and "Nothing outside the folder was touched" in told
    # Listed by the shell's glob, not `ls`: gVisor 20221219 answers coreutils' statx with EINVAL.
    memory = await arena.agent("cat /workspace/agent/CLAUDE.md; echo /workspace/agent/.* /workspace/agent/*")
    assert "Memory of this agent group" in memory and "CLAUDE.md." in memory  # fresh, the planted one set aside


async def test_hostile_huge_sparse_memory_is_not_read_by_the_dashboard(arena: Arena) -> None:
    await arena.agent(plant("/workspace/agent/CLAUDE.md", "huge-sparse", arena.canary))
    with pytest.raises(Exception, match="larger than"):
        arena.host.folders.read_memory("family")
    await arena.restart_runners()
    await arena.still_answers()
    arena.canary_untouched()


async def test_hostile_global_memory_link_planted_by_the_admin_agent(arena: Arena) -> None:
    out = await arena.agent(plant("/workspace/global/CLAUDE.md", "dangling-link", arena.canary), chat=ADMIN_CHAT)
    assert out.startswith("exit 0"), out
    await arena.restart_host()
    await arena.still_answers(ADMIN_CHAT)
    await arena.still_answers()
    arena.canary_untouched()
    await arena.owner_told("CLAUDE.md", "global memory")


# -- skills: the project's skills copied in at each start ------------------------------------------


@pytest.mark.parametrize("where,kind", [
    ("skill-file", "file-link"), ("skill-file", "dangling-link"), ("skill-file", "fifo"),
    ("skill-folder", "dir-link"), ("skills-folder", "dir-link"), (".claude", "dangling-link"),
])
async def test_hostile_skills_replaced_then_runner_restarts(arena: Arena, where: str, kind: str) -> None:
    """copy_skills (shutil.copytree) once followed these links and widened the target's mode (finding 1)."""
    listing = await arena.agent("cd /workspace/agent/.claude/skills && echo *")
    skill = listing.split("\n")[1].split()[0].strip()
    assert skill, listing
    path = {"skill-file": f"/workspace/agent/.claude/skills/{skill}/SKILL.md",
            "skill-folder": f"/workspace/agent/.claude/skills/{skill}",
            "skills-folder": "/workspace/agent/.claude/skills", ".claude": "/workspace/agent/.claude"}[where]
    out = await arena.agent(plant(path, kind, arena.canary))
    assert out.startswith("exit 0"), out
    await arena.restart_runners()
    await arena.still_answers()
    arena.canary_untouched()
    again = await arena.agent(f"test -f /workspace/agent/.claude/skills/{skill}/SKILL.md && echo restored")
    assert "restored" in again  # the skill is back, as a plain file


# -- the session folder at a host restart ----------------------------------------------------------


@pytest.mark.parametrize("name,kind", [
    ("outbound.db", "dangling-link"), ("outbound.db", "file-link"), ("outbound.db-wal", "dangling-link"),
    ("bell.out", "file-link"), ("inbox", "dir-link"), ("outbox", "dir-link"),
])
async def test_hostile_session_files_replaced_then_host_restarts(arena: Arena, name: str, kind: str) -> None:
    """SessionFolder.create() once connected SQLite through a dangling outbound.db link (finding 3)."""
    out = await arena.agent(plant(f"/workspace/{name}", kind, arena.canary))
    if arena.settings.runtime == "gvisor" and name.startswith("outbound.db"):
        # Through the session link the runner never opens outbound.db: its files are read-only mount points.
        assert "Device or resource busy" in out or "Read-only file system" in out, out
    else:
        assert out.startswith("exit 0"), out
    await arena.restart_host()
    reply = await arena.say("hello after the restart")
    arena.canary_untouched()
    texts = [s.text for s in arena.to(GROUP_CHAT)[-2:]]
    assert QUARANTINE_NOTICE in texts or "hello after the restart" in reply.text, texts
    await arena.still_answers()


async def test_hostile_inbound_db_cannot_be_replaced_while_mounted(arena: Arena) -> None:
    out = await arena.agent("rm -f /workspace/inbound.db; mv /workspace/inbound.db /workspace/x; "
                            f"ln -sf {links(arena.canary)['dangling']} /workspace/inbound.db; echo done")
    assert "Read-only file system" in out or "Device or resource busy" in out, out
    await arena.restart_host()
    await arena.still_answers()
    arena.canary_untouched()


# -- send_file: outbox files the host reads -------------------------------------------------------


SEND_ROW = """
import json, sqlite3, time
db = sqlite3.connect("/workspace/outbound.db")
db.execute("INSERT INTO messages_out (seq, id, kind, channel_type, platform_id, text, payload, created_at)"
           " VALUES (?,?,?,?,?,?,?,?)", (SEQ, "forged", "file", "fake", "CHAT", "here it is",
                                         json.dumps({"file": "REFERENCE"}), time.time()))
db.commit()
"""
FORGED_SEQ = 100_001  # far above the runner's own: its reply to this turn is lost, its next runner goes on


@pytest.mark.parametrize("kind,reason", [
    ("file-link", "link"), ("dangling-link", "link"), ("fifo", "fifo"), ("dir-link-parent", "link"),
])
async def test_hostile_send_file_of_something_not_a_file(arena: Arena, kind: str, reason: str) -> None:
    """The agent bypasses its tool and writes the file row itself, pointing at a link or a FIFO."""
    if kind == "dir-link-parent":
        setup = f"mkdir -p /workspace/outbox && ln -s {links(arena.canary)['dir']} /workspace/outbox/f-evil"
        reference = "f-evil/inner"
    else:
        setup = "mkdir -p /workspace/outbox/f-evil && " + plant("/workspace/outbox/f-evil/secret", kind, arena.canary)
        reference = "f-evil/secret"
    await arena.still_answers()
    session_id = next(iter(arena.host.supervisor.live))
    row = SEND_ROW.replace("REFERENCE", reference).replace("SEQ", str(FORGED_SEQ)).replace("CHAT", GROUP_CHAT)
    await arena.channel.say(f"[mock:sh={setup} && {python(row)}]", chat=GROUP_CHAT)
    end = arena.host.sessions.end(session_id)
    record = None
    for _ in range(400 if arena.settings.runtime != "gvisor" else 60):
        record = end.delivery(FORGED_SEQ)
        if record is not None and record["status"] != "sending":
            break
        await asyncio.sleep(0.05)
    if arena.settings.runtime == "gvisor":
        # The runner reaches its databases through the host (no shared file locks across gVisor): a write
        # beside it is refused, or damages the session, which is set aside. Either way nothing is read.
        assert record is None or record["status"] == "refused", dict(record)
    else:
        assert record is not None and record["status"] == "refused", dict(record) if record else None
        assert reason in record["error"] or (kind == "fifo" and not arena.fifos_reach_the_host), record["error"]
    assert not any(s.file is not None for s in arena.to(GROUP_CHAT))  # nothing went out as a file
    arena.canary_untouched()
    if arena.settings.runtime != "gvisor":
        # The attacking turn ends (acked) before its runner is killed; else it is retried first and its second
        # run's output (the forged seq exists now) comes where the answer below is awaited.
        deadline = asyncio.get_running_loop().time() + 30
        while end.unfinished():
            assert asyncio.get_running_loop().time() < deadline, "the attacking turn never ended"
            await asyncio.sleep(0.05)
    await arena.restart_runners()
    reply = await arena.say("are you still there?")
    if "storage was damaged" in reply.text:  # gVisor: its write beside the host's lock-less link broke the session
        assert arena.settings.runtime == "gvisor", reply.text
        await arena.owner_told("damaged or tampered")
        await arena.still_answers()
    else:
        assert "are you still there?" in reply.text, reply.text


# -- attachments people send ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dir-link", "file-link"])
async def test_hostile_inbox_planted_before_a_person_sends_a_file(arena: Arena, kind: str) -> None:
    import hashlib

    from nanoclaw.channels.base import FileAttachment, InboundEvent

    subdir = hashlib.sha256(b"m-attached").hexdigest()[:16]  # the agent can compute where the host will write
    place = f"/workspace/inbox/{subdir}" + ("" if kind == "dir-link" else "/photo.jpg")
    await arena.agent(f"mkdir -p /workspace/inbox/{subdir}; " + plant(place, kind, arena.canary))
    before = len(arena.to(GROUP_CHAT))
    await arena.host.receive(InboundEvent("fake", GROUP_CHAT, "m-attached", "here is a photo", "alice", "Alice",
                                          files=(FileAttachment("photo.jpg", b"\xff\xd8 jpeg bytes"),)))
    reply = (await arena.wait_for(GROUP_CHAT, before + 1))[-1].text
    arena.canary_untouched()
    assert "photo.jpg" in reply  # the agent is told about the file: saved, or why not
    if kind == "dir-link":
        assert "not saved" in reply
    await arena.still_answers()


# -- create_agent ------------------------------------------------------------------------------------


async def test_hostile_create_agent_on_its_own_id_through_a_linked_memory(arena: Arena) -> None:
    """The admin agent links its memory to a host file and re-creates itself (finding 2): refused."""
    target = arena.canary / "dir" / "evil.pth"
    await arena.agent(f"rm /workspace/agent/CLAUDE.md; ln -s {target} /workspace/agent/CLAUDE.md", chat=ADMIN_CHAT)
    reply = await arena.say(tool("create_agent", id="main", name="Main", instructions="import os; os.system('id')"),
                            chat=ADMIN_CHAT)
    assert "already exists" in reply.text, reply.text
    other = await arena.say(tool("create_agent", id="family", name="F", instructions="x"), chat=ADMIN_CHAT)
    assert "already exists" in other.text, other.text
    assert not target.exists()
    arena.canary_untouched()
    await arena.still_answers(ADMIN_CHAT)


async def test_hostile_create_agent_with_a_path_for_an_id(arena: Arena) -> None:
    for bad in ("../../etc", "global", "a/b", "x" * 80):
        reply = await arena.say(tool("create_agent", id=bad, name="x", instructions="y"), chat=ADMIN_CHAT)
        assert "Error" in reply.text or "must be" in reply.text or "reserved" in reply.text, reply.text
    arena.canary_untouched()


# -- the dashboard's memory editor ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file-link", "dangling-link", "fifo"])
async def test_hostile_memory_edited_on_the_dashboard(arena: Arena, kind: str) -> None:
    await arena.agent(plant("/workspace/agent/CLAUDE.md", kind, arena.canary))
    memory = arena.host.folders.group_path("family") / "CLAUDE.md"
    # (A pooled sandbox started meanwhile may have repaired the memory first: set the FIFO aside.)
    if kind == "fifo" and arena.fifos_reach_the_host and stat.S_ISFIFO(os.lstat(memory).st_mode):
        with pytest.raises(Exception, match="fifo"):
            arena.host.folders.read_memory("family")  # refused at once, never a blocked read
    arena.host.folders.write_memory("family", "# Family\nThe owner edited this.\n")
    arena.canary_untouched()
    assert "The owner edited this." in await arena.agent("cat /workspace/agent/CLAUDE.md")


# -- backup and restore -----------------------------------------------------------------------------


TRAPS = ("ln -s {file} /workspace/agent/to-file; ln -s {dir} /workspace/agent/to-dir; "
         "ln -s {dangling} /workspace/agent/to-nothing; mkfifo /workspace/agent/pipe; "
         "truncate -s 15M /workspace/agent/sparse; "
         "d=/workspace/agent/deep; for i in $(seq 120); do d=$d/d; done; mkdir -p $d; "
         "touch /workspace/agent/\"$(printf 'new\\nline')\" /workspace/agent/\"$(printf 'x%.0s' $(seq 250))\"; "
         "ln -s {dir} /home/agent/.claude/to-dir; mkfifo /home/agent/.claude/pipe; echo planted")


async def test_hostile_backup_and_restore_of_a_booby_trapped_home(arena: Arena, tmp_path: Path) -> None:
    out = await arena.agent(TRAPS.format(**links(arena.canary)))
    assert "planted" in out, out
    archive = tmp_path / "backup.tar.gz"
    counts = await asyncio.to_thread(backup, arena.settings, archive)
    if arena.fifos_reach_the_host:
        assert counts["skipped"] >= 2  # the FIFOs left out, the backup finished
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert not any("canary" in n for n in names)
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                assert b"original, root's own" not in data
    arena.canary_untouched()
    await arena.close()
    restored = tmp_path / "restored"
    restore(archive, restored)
    again = await Arena._start(arena.settings.with_overrides(home=restored))
    try:
        arena.host = again
        await arena.still_answers()
    finally:
        await again.stop()
    arena.host = await Arena._start(arena.settings)
    arena.canary_untouched()


async def test_hostile_deep_tree_and_odd_names_at_runner_start(arena: Arena) -> None:
    out = await arena.agent(TRAPS.format(**links(arena.canary)))
    assert "planted" in out
    await arena.restart_runners()
    await arena.still_answers()
    await arena.restart_host()  # the hand-over walk of a fresh host meets it all
    await arena.still_answers()
    arena.canary_untouched()


# -- install_packages ------------------------------------------------------------------------------


async def test_hostile_install_packages_names(arena: Arena) -> None:
    for bad in (["../../etc"], ["jq; touch /tmp/pwned"], ["$(id)"], ["a" * 100], [" jq"]):
        reply = await arena.say(tool("install_packages", packages=bad, reason="x"))
        assert "Refused: not Debian package names" in reply.text, reply.text
    assert not Path("/tmp/pwned").exists()
    arena.canary_untouched()
    await arena.still_answers()


# -- the disk quota --------------------------------------------------------------------------------


async def test_hostile_disk_fill_stops_at_the_quota(arena: Arena) -> None:
    if arena.host.folders.volumes is None:
        pytest.fail("the disk quota is not enforced on this host (it needs root and loop devices)")
    out = await arena.agent("i=0; while dd if=/dev/zero of=/workspace/agent/fill$i bs=1M count=8 2>/tmp/err; "
                            "do i=$((i+1)); done; cat /tmp/err; df -k /workspace/agent | tail -1")
    assert "No space left on device" in out, out
    usage = arena.host.folders.usage("family")
    assert usage is not None and usage.full
    image = arena.settings.state_dir / "volumes" / "family.img"
    assert image.stat().st_blocks * 512 <= (arena.settings.disk_quota_mb << 20) * 1.05  # the host's disk: no more
    await arena.owner_told("family", "disk quota")
    await arena.still_answers()  # the host's own writes (inbound.db) use root's reserve
    more = await arena.agent("dd if=/dev/zero of=/workspace/agent/more bs=1M count=2 2>&1")
    assert "No space left on device" in more, more
    freed = await arena.agent("rm -f /workspace/agent/fill*; echo more > /workspace/agent/one-more && echo ok")
    assert "ok" in freed


async def test_hostile_session_folder_fill_counts_against_the_same_quota(arena: Arena) -> None:
    if arena.host.folders.volumes is None:
        pytest.fail("the disk quota is not enforced on this host (it needs root and loop devices)")
    out = await arena.agent("for f in /workspace/outbox/big /home/agent/.claude/big /workspace/agent/big; do "
                            "dd if=/dev/zero of=$f bs=1M count=15 2>&1 | grep -E 'No space|copied'; done")
    # 45 MB over three trees of one group: its 48 MB image (less the filesystem's own) runs out in the third.
    assert out.count("copied") == 3 and "No space left on device" in out, out
    await arena.still_answers()


# -- secrets in argv, host paths in mountinfo --------------------------------------------------------


async def test_hostile_proxy_token_is_in_no_command_line(arena: Arena) -> None:
    await arena.still_answers()
    session_id = next(iter(arena.host.supervisor.live))
    token = arena.host.proxy.token_serving(session_id)  # an adopted sandbox's is its pooled socket's
    assert token
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert token.encode() not in cmdline, f"pid {entry.name} has the token in its argv"


async def test_hostile_mountinfo_shows_no_host_path_of_the_trees(arena: Arena) -> None:
    out = await arena.agent("cat /proc/self/mountinfo")
    home = str(arena.settings.home)
    for line in out.splitlines():
        if " /workspace" in line or " /home/agent/.claude" in line:
            assert home not in line, line


# -- finding 4, end to end: the host's settings file and its web port ---------------------------------


PROXY_TRIES = r"""
import json, os, socket, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
auth = "Proxy-Authorization: Basic " + __import__("base64").b64encode(
    (proxy.username + ":" + proxy.password).encode()).decode()
out = {}
for target in TARGETS:
    s = socket.create_connection((proxy.hostname, proxy.port), 10)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n\r\n" % (target, target, auth)).encode())
    out[target] = s.recv(200).decode(errors="replace").split("\r\n")[0]
    s.close()
print(json.dumps(out))
"""


async def test_hostile_end_to_end_settings_file_and_the_web_port(arena: Arena) -> None:
    """The reported attack: links aimed at the host's settings file, a restart, then the proxy at the web port."""
    config = arena.settings.config_file
    config.write_text("NANOCLAW_ASSISTANT_NAME=Andy\n")
    before = config.read_bytes(), config.stat().st_mode
    await arena.agent(f"rm -f /workspace/agent/CLAUDE.md; ln -s {config} /workspace/agent/CLAUDE.md; "
                      f"for f in /workspace/agent/.claude/skills/*/SKILL.md; do rm -f $f; ln -s {config} $f; done; "
                      f"ln -sf {config} /home/agent/.claude/settings.json; echo planted")
    await arena.restart_host()
    await arena.still_answers()
    arena.host.folders.write_memory("family", "ANTHROPIC_BASE_URL=https://evil.example\n")
    assert (config.read_bytes(), config.stat().st_mode) == before
    port = arena.host.web.url.rsplit(":", 1)[1].split("/")[0]
    targets = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"[::127.0.0.1]:{port}",
               f"[::ffff:127.0.0.1]:{port}", f"[64:ff9b::7f00:1]:{port}"]
    code = PROXY_TRIES.replace("TARGETS", repr(targets))
    out = await arena.agent(python(code))
    assert out.startswith("exit 0"), out
    seen = json.loads(out.splitlines()[-1])
    assert all(v.startswith("HTTP/1.1 403") for v in seen.values()), seen
    arena.canary_untouched()


# -- one way in: no host code opens these trees by path ---------------------------------------------


_WATCHED_EVENTS = {"open", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "os.listdir", "os.scandir",
                   "os.chown", "os.chmod", "os.symlink", "os.link", "os.truncate", "os.utime", "shutil.copytree",
                   "shutil.copyfile", "shutil.rmtree", "shutil.move", "sqlite3.connect", "os.walk"}
_ALLOWED = ("nanoclaw/safefs/", "nanoclaw/sandbox/quota.py")
_audit: dict[str, Any] = {"trees": None, "seen": [], "checked": 0}


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    trees = _audit["trees"]
    if trees is None or event not in _WATCHED_EVENTS:
        return
    for arg in args:
        if not isinstance(arg, (str, bytes, os.PathLike)):
            continue
        path = os.fsdecode(arg)
        if not os.path.isabs(path) or not any(path == t or path.startswith(t + "/") for t in trees()):
            continue
        _audit["checked"] += 1
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            if "/nanoclaw/" in name and "/site-packages/" not in name:
                if not any(allowed in name for allowed in _ALLOWED):
                    _audit["seen"].append(f"{event} {path} from {name}:{frame.f_lineno}")
                break
            frame = frame.f_back


async def test_hostile_host_code_reaches_agent_trees_only_through_safefs(tmp_path: Path) -> None:
    """Every open, listing, rename or chown of a path in a sandbox-writable tree comes from safefs (or the
    quota's mounts): recorded with an audit hook while a host runs every path of this battery."""
    if not _audit.get("installed"):
        sys.addaudithook(_audit_hook)
        _audit["installed"] = True
    arena = await Arena.open(tmp_path, "bwrap", None)
    home = str(arena.settings.home)

    def trees() -> list[str]:
        found = [f"{home}/groups/{p.name}" for p in (arena.settings.groups_dir).iterdir()]
        found += [f"{home}/state/claude/{p.name}" for p in (arena.settings.state_dir / "claude").glob("*")]
        for group in arena.settings.sessions_dir.iterdir():
            found += [f"{home}/sessions/{group.name}/{s.name}" for s in group.iterdir()]
        return found

    snapshot_trees: list[str] = []
    _audit.update(trees=lambda: snapshot_trees, seen=[], checked=0)
    try:
        await arena.still_answers()
        await arena.still_answers(ADMIN_CHAT)
        snapshot_trees[:] = trees()
        await arena.agent("echo hi > /workspace/agent/note.txt")
        await arena.say(tool("send_file", path="/workspace/agent/note.txt"))
        from nanoclaw.channels.base import FileAttachment, InboundEvent

        await arena.host.receive(InboundEvent("fake", GROUP_CHAT, "m-file", "a file", "alice", "Alice",
                                              files=(FileAttachment("a.txt", b"data"),)))
        arena.host.folders.write_memory("family", "# edited\n")
        arena.host.folders.read_memory("family")
        await arena.say(tool("create_agent", id="helper", name="Helper", instructions="help"), chat=ADMIN_CHAT)
        await arena.restart_runners()
        await arena.still_answers()
        await arena.restart_host()
        await arena.still_answers()
        snapshot_trees[:] = trees()
        await asyncio.to_thread(backup, arena.settings, tmp_path / "b.tar.gz")
    finally:
        _audit["trees"] = None
        await arena.close()
    assert _audit["checked"] > 20  # the hook saw the trees being worked on
    assert _audit["seen"] == []
