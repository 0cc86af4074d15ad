"""Helpers for differential testing: random graphs of every op, and every implementation against golden."""
