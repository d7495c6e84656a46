"""Lambda handlers (entry points)."""
