"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from typing import Any


class LinkSimError(Exception):
    """Base class of every error linksim reports to a user."""


class ConfigError(LinkSimError, ValueError):
    """A value the user gave is not allowed.

    The message always names the field, the value and what is allowed, e.g.
    ``snr_db: got [] — expected a non-empty list of numbers``.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r} — expected {allowed}")


class ImageError(LinkSimError, ValueError):
    """An input image cannot be used (unreadable, corrupt, too small, unsupported mode)."""
