"""The benchmarks still run and report their keys (tiny sizes; no timing asserted here)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import cold_start, latency, load, streaming, throughput

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


async def test_latency_reports_warm_cold_baseline_and_the_protocol_limit() -> None:
    result = await latency.run(argparse.Namespace(samples=20, limit_samples=50, baseline_samples=2, cold_samples=2,
                                                  pooled_samples=2))
    assert {"warm_p50_ms", "warm_p99_ms", "baseline_warm_p50_ms", "cold_p50_ms", "speedup_p50",
            "protocol_limit_p50_ms", "warm_over_limit_p50", "pooled_first_reply_p50_ms"} <= set(result)
    assert result["pooled_first_reply_n"] == 2
    assert result["protocol_limit_n"] == 50 and 0 < result["protocol_limit_p50_ms"] < result["warm_p50_ms"]


async def test_throughput_and_load_report() -> None:
    tp = await throughput.run(argparse.Namespace(messages=200, triggers=50))
    assert tp["context_messages"] == 200 and tp["context_accepted_per_s"] > 0
    assert 0 < tp["trigger_answered_per_s"] <= tp["trigger_accepted_per_s"] and tp["trigger_messages"] == 50
    result = await load.run(argparse.Namespace(chats_per_channel=1, seconds=1.0))
    assert result["messages"] > 0 and result["status_p99_ms"] is not None


async def test_cold_start_reports_each_runtime_and_why_one_is_not_usable() -> None:
    result = await cold_start.run(argparse.Namespace(samples=2, runtime=["bwrap", "podman", "docker", "gvisor"]))
    assert result["baseline_n"] == 2
    for name in ("bwrap", "podman", "gvisor"):
        assert result["runtimes"][name]["usable"] is True and result["runtimes"][name]["cold_n"] == 2
    docker = result["runtimes"]["docker"]
    assert docker["usable"] is True or docker["why"]  # no docker engine here: the reason is in the report


async def test_streaming_reports_first_text_in_the_browser_and_the_chat_app_and_the_baseline() -> None:
    result = await streaming.run(argparse.Namespace(samples=1))
    assert {"model_first_token_ms", "web_first_text_p50_ms", "channel_first_text_p50_ms",
            "baseline_first_text_p50_ms"} <= set(result)
    assert result["baseline_first_text_p50_ms"] > streaming.SECONDS * 1000 * 0.9  # whole: after the model finished
