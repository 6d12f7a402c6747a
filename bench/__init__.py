"""Benchmarks: scripts that print figures next to a same-run baseline (see bench/README.md)."""
