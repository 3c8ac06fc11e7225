"""docs/performance.md's figures come from a benchmark run: the table is rewritten between its markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import report

RUN = {
    "latency": {"warm_p50_ms": 0.41, "warm_p99_ms": 0.9, "protocol_limit_p50_ms": 0.1, "warm_over_limit_p50": 4.1,
                "baseline_warm_p50_ms": 1003.2, "speedup_p50": 2446.8, "cold_p50_ms": 150.4,
                "pooled_first_reply_p50_ms": 3.2},
    "throughput": {"context_accepted_per_s": 8123.4, "trigger_accepted_per_s": 5000.0,
                   "trigger_answered_per_s": 4000.0},
    "resources": {"host_rss_mb_empty": 33.0, "host_rss_mb_50_idle_sessions": 47.1, "runner_rss_mb": 29.4,
                  "host_idle_cpu_percent": 0.01},
}


def test_the_table_holds_the_run_s_numbers_and_only_it_is_rewritten(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\nintro\n{report.START}\nold figures\n{report.END}\nafter\n")
    report.rewrite(doc, report.table(RUN))
    text = doc.read_text()
    assert "old figures" not in text and text.startswith("# Performance\nintro\n") and text.endswith("after\n")
    assert "| warm round trip p50 / p99 | 0.41 ms / 0.9 ms |" in text
    assert "| host RSS: empty / 50 idle sessions | 33.0 MB / 47.1 MB |" in text
    assert "8,123 msg/s" in text and "5,000 / 4,000 msg/s" in text and "| 4.1× |" in text
    assert "| pooled first reply p50 (new session, a pre-warmed sandbox adopted) | 3.2 ms | ≤ 5 ms |" in text


def test_a_doc_without_markers_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n")
    with pytest.raises(SystemExit, match="no <!-- report:start -->"):
        report.rewrite(doc, report.table(RUN))
