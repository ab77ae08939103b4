"""Benchmarks, run by `make bench` (never by the test suite).

Each `bench_*.py` module defines `NAME`, `TITLE` and `run(context) -> str`, which returns a
Markdown section with the figures; `manage.py bench` collects them into docs/benchmarks.md.
"""
