"""Benchmark harness and peers: timings are medians after warm-up, as ratios in one run."""
