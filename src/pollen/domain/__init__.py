"""Upstream records validated and shaped into the items of CONTRACT.md (pure functions, no I/O)."""
