"""Epochscope."""
