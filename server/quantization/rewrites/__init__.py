"""Exact rewrites of what exporters emit, applied before quantization (see canonicalize.py)."""
