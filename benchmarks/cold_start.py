"""Cold start per sandbox runtime: a message to a session with no runner → the reply delivered.

That is spawn → runner ready → answer (the mock provider answers in well under
a millisecond, so the figure is the sandbox and the runner starting). The
baseline, measured in the same run, is the runner's interpreter starting with
no sandbox at all (`python -I -c "import nanoclaw.runner.main"`).

Runtimes that do not work here are reported with their reason, not skipped
silently. podman and gvisor use NANOCLAW_SANDBOX_IMAGE, else the image the tests build
(made on first use).

    .venv/bin/python -m benchmarks.cold_start --json
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from typing import Any

from benchmarks._harness import emit, progress, summary
from benchmarks.latency import cold
from nanoclaw import registry
from nanoclaw.sandbox import detect


def baseline(samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "import nanoclaw.runner.main"], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


IMAGE_RUNTIMES = ("podman", "gvisor")  # start the agent image


def image_for(runtime: str) -> str:
    """The image the OCI runtimes start: the configured one, else the one the test suite builds."""
    import os

    if os.environ.get("NANOCLAW_SANDBOX_IMAGE"):
        return os.environ["NANOCLAW_SANDBOX_IMAGE"]
    if runtime not in IMAGE_RUNTIMES:
        return ""
    from tests.oci_image import ensure_agent_image

    return ensure_agent_image()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress(f"baseline: runner interpreter start, no sandbox ({args.samples})…")
    result: dict[str, Any] = summary("baseline", baseline(args.samples))
    runtimes: dict[str, Any] = {}
    wanted = args.runtime or [n for n in detect.preference() if n in registry.names(registry.RUNTIMES)]
    for name in wanted:
        check = detect.check(name)
        overrides: dict[str, Any] = {}
        if name in ("podman", "docker", *IMAGE_RUNTIMES) and not check.ok and "image" not in check.detail:
            runtimes[name] = {"usable": False, "why": check.detail}
            continue
        if name in ("podman", "docker", *IMAGE_RUNTIMES):
            overrides["sandbox_image"] = image_for(name)
            if not overrides["sandbox_image"]:
                runtimes[name] = {"usable": False, "why": check.detail}
                continue
        elif not check.ok:
            runtimes[name] = {"usable": False, "why": check.detail}
            continue
        progress(f"{name}: cold starts ({args.samples})…")
        figures: dict[str, Any] = {"usable": True,
                                   **summary("cold", await cold(args.samples, runtime=name, **overrides))}
        figures["ratio_to_baseline_p50"] = round(figures["cold_p50_ms"] / max(result["baseline_p50_ms"], 1e-3), 2)
        runtimes[name] = figures
    result["runtimes"] = runtimes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=10, help="cold starts per runtime [10]")
    parser.add_argument("--runtime", action="append", help="only this runtime (repeatable) [every installed one]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
