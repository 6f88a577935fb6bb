"""Benchmarks (`make bench`) and fault drills (`make faults`); see bench/README.md."""
