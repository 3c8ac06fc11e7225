"""Benchmarks: each module runs with `python -m benchmarks.NAME --json` and prints one JSON object last."""
