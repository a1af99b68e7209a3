"""Benchmarks for crossprefill (not shipped in the package)."""
