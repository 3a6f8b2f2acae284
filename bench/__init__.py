"""Benchmarks: run each with `.venv/bin/python -m bench.NAME`; results in docs/benchmarks.md."""
