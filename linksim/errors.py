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


def checked_fields(d, cls) -> dict:
    """A copy of ``d`` (a JSON object read from a config file) after checking that it is a
    mapping whose keys are all fields of the dataclass ``cls``.

    :raises ConfigError: field ``config`` — not a mapping, or an unknown key (the first one,
        with the known fields listed).
    """
    if not isinstance(d, dict):
        raise ConfigError("config", type(d).__name__, f"a JSON object of {cls.__name__} fields")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError("config", unknown[0], f"fields among {sorted(known)}")
    return dict(d)
