"""Benchmarks: speed targets, run with ``make bench`` (see bench/README.md), never as timed unit tests."""
