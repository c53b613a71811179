"""Reproducible random streams: one ``torch.Generator`` per simulation point.

Every random draw in linksim (channel noise, fading, random bits) comes from a generator
derived from the scenario seed and the identity of the point — (scheme, image id, SNR,
trial) — so rerunning one point gives the same numbers, whatever ran before it, and
changing one scheme does not change the draws of another. The bandwidth of a rate sweep is
left out on purpose: the same point at two bandwidths sees the same draws (common random
numbers), and a sweep's rows at one bandwidth equal those of a run at that bandwidth alone.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and any printable parts.

    The parts are joined by their ``repr`` (floats as ``repr(float(x))`` so 3 and 3.0 agree)
    and hashed with SHA-256; the result is stable across processes, platforms and Python
    versions (unlike ``hash()``).

    Example
    -------
    >>> derive_seed(1, "bpg+ldpc", "astronaut", 3.0, 0) == derive_seed(1, "bpg+ldpc", "astronaut", 3, 0)
    True
    """
    text = "|".join([str(int(seed))] + [repr(float(p)) if isinstance(p, (int, float)) and not isinstance(p, bool) else repr(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def point_generator(seed: int, *parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded by :func:`derive_seed` (seed, *parts)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *parts))
    return generator
