"""Benchmarks and measurements, each a module run from the repository root: `python -m benchmarks.<name> …`.

Beside them what both they and the tests use: synthetic history (app_synthetic), a fake NVML (fake_nvml,
fake_site/ for subprocesses), a throwaway PostgreSQL (pg_server) and the process harness (harness).
"""
