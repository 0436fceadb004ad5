"""Throughput benchmarks: ``python -m benchmarks.throughput`` (see its docstring)."""
