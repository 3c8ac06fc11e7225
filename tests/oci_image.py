"""The agent image the podman tests run, built here without any registry.

The base is a Debian rootfs made with debootstrap (Debian's own mirror) and
`podman import`ed once per machine; the agent image on top is built by
`nanoclaw sandbox build`'s code from this checkout, tagged by a hash of the
source so a changed runner is always rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nanoclaw.sandbox.image import project_dir

BASE = "localhost/nanoclaw-test-base:bookworm"
MIRROR = os.environ.get("NANOCLAW_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def podman() -> list[str]:
    exe = shutil.which("podman")
    if exe is None:
        raise RuntimeError("podman is not installed: run ./scripts/test (it installs podman, runc, debootstrap)")
    return [exe]


def _exists(tag: str) -> bool:
    return subprocess.run([*podman(), "image", "exists", tag]).returncode == 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ensure_base() -> str:
    if _exists(BASE):
        return BASE
    _say(f"building {BASE} with debootstrap (once per machine, about a minute)…")
    with tempfile.TemporaryDirectory(prefix="nanoclaw-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", str(rootfs), MIRROR], check=True, stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*podman(), "import", "-", BASE], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.wait()
    return BASE


def source_hash() -> str:
    root = project_dir()
    assert root is not None, "the tests run from a checkout"
    digest = hashlib.sha256()
    for path in sorted([root / "pyproject.toml", *(root / "nanoclaw").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_agent_image() -> str:
    tag = f"localhost/nanoclaw-agent:test-{source_hash()}"
    if not _exists(tag):
        base = ensure_base()
        _say(f"building {tag} with `nanoclaw sandbox build` (about 30 s)…")
        with tempfile.TemporaryDirectory() as home:
            built = subprocess.run(
                [str(Path(sys.executable).parent / "nanoclaw"), "sandbox", "build", "--runtime", "podman",
                 "--base", base, "--tag", tag],
                env={**os.environ, "NANOCLAW_HOME": home}, capture_output=True, text=True,
            )
        assert built.returncode == 0, built.stdout + built.stderr
        assert f"image {tag} is ready" in built.stdout and "[2/2]" in built.stdout
        _remove_older(tag)
    return tag


def _remove_older(keep: str, spare: int = 8) -> None:
    """Drop test images but the newest few. Never --force: another checkout's test run may be using one
    right now (its containers would go with it); an image in use simply stays."""
    listed = subprocess.run([*podman(), "images", "--sort", "created", "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True).stdout.split()
    ours = [t for t in listed if t.startswith("localhost/nanoclaw-agent:test-") and t != keep]
    for tag in ours[spare - 1:]:
        subprocess.run([*podman(), "rmi", tag], capture_output=True)
