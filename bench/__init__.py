"""The benchmark harness: `bench/run.py` and one module per workload (see docs/benchmarks.md)."""
