"""Errors that reach the user as a message and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unsupported model: exit code 2, nothing written."""

    exit_code = 2


class UnsupportedLayer(UserError):
    """A layer the toolkit cannot translate."""
