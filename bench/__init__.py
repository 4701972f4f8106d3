"""Benchmarks: print throughput and ratios; never part of the pass/fail suite."""
