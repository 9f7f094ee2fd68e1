"""Benchmarks (`make bench`) writing bench/results.json."""
