"""Benchmarks: speed, memory and size figures printed next to their goals."""
