"""Where torch work runs: the one check every user-given device name goes through.

Scenario schemes and restorers (``device:``) and the training and evaluation commands
(``--device``) accept ``cpu``, ``cuda`` or ``cuda:N``; CUDA only where a CUDA device exists.
"""

from __future__ import annotations

from linksim.errors import ConfigError

__all__ = ["parse_device"]

_ALLOWED = "'cpu', 'cuda' or 'cuda:N'"


def parse_device(value, field: str) -> str:
    """``value`` as a device string, or :class:`ConfigError` naming ``field``.

    >>> parse_device("cpu", "device")
    'cpu'
    """
    import torch

    try:
        parsed = torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigError(field, value, _ALLOWED) from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(field, value, _ALLOWED)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(field, value, "'cpu' (no CUDA device is available here)")
    return str(value)
