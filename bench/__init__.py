"""Benchmarks of the chat's room fan-out: run `python -m bench --help`."""
