"""Benchmarks: each prints our figure beside an anchor measured in the same run (a ratio), never a pass/fail."""
