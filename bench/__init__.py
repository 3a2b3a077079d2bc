"""Benchmarks: `python -m bench [name ...]` (or `make bench`). See bench/README.md."""
