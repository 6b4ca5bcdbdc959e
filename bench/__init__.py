"""Benchmarks of what users feel: ack, click and rollback latency, scale, calls and memory.

`python -m bench` runs them all and prints a table; `python -m bench.<name>` runs one.
Results and their reading are in docs/BENCHMARKS.md.
"""
