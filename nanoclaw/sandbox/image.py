"""Building the agent image of the OCI runtimes (`nanoclaw sandbox build`).

NanoClaw and its dependencies are turned into wheels on the host first (from
this checkout when there is one, else the installed version from the index),
so the image build itself needs no network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Callable

from nanoclaw.errors import SandboxUnavailable

Progress = Callable[[str], None]


def project_dir() -> Path | None:
    """The source checkout NanoClaw runs from, if it runs from one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "nanoclaw").is_dir() else None


def build_image(cli: list[str], tag: str, *, base: str | None = None, progress: Progress = print) -> None:
    """Build `tag` with `cli` (podman or docker); raises SandboxUnavailable with the tool's words on failure."""
    version = metadata.version("nanoclaw")
    with tempfile.TemporaryDirectory(prefix="nanoclaw-image-") as tmp:
        context = Path(tmp)
        shutil.copy(str(files("nanoclaw.sandbox") / "Dockerfile"), context / "Dockerfile")
        source = project_dir()
        wanted = str(source) if source else f"nanoclaw=={version}"
        progress(f"[1/2] wheels of {wanted} and its dependencies…")
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(context / "wheels"), wanted],
             "pip could not make the wheels")
        progress(f"[2/2] image {tag} from {base or 'the default base'}…")
        args = [*cli, "build", "--tag", tag, "--build-arg", f"VERSION={version}"]
        if Path(cli[0]).name == "podman":
            args += ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        if base:
            args += ["--build-arg", f"BASE={base}"]
        _run([*args, str(context)], f"{Path(cli[0]).name} build failed", show=progress)


def _run(args: list[str], failure: str, show: Progress | None = None) -> None:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if show and line.startswith("STEP"):
            show("  " + line.rstrip())
    if proc.wait() != 0:
        raise SandboxUnavailable(f"{failure}:\n" + "\n".join(tail))


GROUP_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG PACKAGES
USER 0
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${PACKAGES} \\
 && rm -rf /var/lib/apt/lists/*
USER 1000:1000
"""


def group_image(base: str, group_id: str) -> str:
    """The tag of an agent group's own image: the agent image plus the packages the owner approved."""
    repo = base.rsplit(":", 1)[0] if ":" in base.rsplit("/", 1)[-1] else base
    return f"{repo}-{group_id}:latest"


def build_group_image(cli: list[str], base: str, tag: str, packages: list[str], progress: Progress = print) -> None:
    """`base` plus Debian `packages` (the build fetches them: it runs with the host's network)."""
    with tempfile.TemporaryDirectory(prefix="nanoclaw-group-image-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(GROUP_DOCKERFILE)
        args = [*cli, "build", "--tag", tag, "--build-arg", f"BASE={base}",
                "--build-arg", f"PACKAGES={' '.join(packages)}"]
        if Path(cli[0]).name in ("podman", "docker"):
            args += ["--network", "host"]
        if Path(cli[0]).name == "podman":
            args += ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        progress(f"image {tag}: {base} + {', '.join(packages)}…")
        _run([*args, tmp], f"could not build {tag}", show=progress)
