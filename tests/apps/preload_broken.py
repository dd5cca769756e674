"""Fails at import time, for --preload's early exit."""

raise RuntimeError("preload_broken refuses to import")
