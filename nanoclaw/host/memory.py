"""The host-wide memory budget: live runners and the pool together stay under it.

The budget is `NANOCLAW_MEMORY_BUDGET_MB`, or by default a fraction of the
machine's memory. Use is measured (the resident memory of each sandbox's
processes, sampled while runners live); what a runner about to start will use
is estimated from the runners of its provider measured so far. When a start
would go over, the pool gives its sandboxes up first, then the idle runner
used least recently is asked to exit (it resumes its session later); a runner
in the middle of a turn is never retired.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_FRACTION = 0.5
# Until a runner of the provider has been measured (MiB; the claude runner is Python plus Claude Code).
FIRST_ESTIMATE = {"claude": 300.0, "openai": 90.0, "mock": 45.0}
FALLBACK_ESTIMATE = 120.0


def meminfo_mb(field: str) -> float:
    """A /proc/meminfo field (MemTotal, MemAvailable) in MiB; 0 where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class MemoryBudget:
    def __init__(self, budget_mb: float = 0.0) -> None:
        total = meminfo_mb("MemTotal")
        self.budget_mb = budget_mb if budget_mb > 0 else (total * DEFAULT_FRACTION if total else float("inf"))
        self._measured: dict[str, float] = {}

    def estimate(self, provider: str) -> float:
        """What one more runner of `provider` will take."""
        return self._measured.get(provider) or FIRST_ESTIMATE.get(provider, FALLBACK_ESTIMATE)

    def observe(self, provider: str, mb: float) -> None:
        """A measured runner; the estimate follows the largest recent ones (a runner grows as it works)."""
        if mb <= 0:
            return
        old = self._measured.get(provider)
        self._measured[provider] = mb if old is None else max(mb, 0.8 * old + 0.2 * mb)

    def room(self, used_mb: float) -> float:
        return self.budget_mb - used_mb
