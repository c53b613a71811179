"""What every transmission scheme shares: the bandwidth it is given and what it returns.

A *scheme* is a transmitter–receiver pair (docs/ARCHITECTURE.md §1, §4). Every scheme at a scenario
point gets the same number ``k`` of complex channel uses per image, fixed by the
:class:`Bandwidth` (cpp or BCR) and the image size, and returns a :class:`LinkOutput`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

from linksim import units
from linksim.errors import ConfigError


@dataclass(frozen=True)
class Bandwidth:
    """The channel budget of one image, as cpp or as BCR ρ (exactly one is set).

    ``cpp`` = k/(H·W) complex channel uses per pixel, ``bcr`` = k/(3·H·W) (docs/ARCHITECTURE.md §2).
    """

    cpp: float | None = None
    bcr: float | None = None

    def __post_init__(self):
        if (self.cpp is None) == (self.bcr is None):
            raise ConfigError("bandwidth", {"cpp": self.cpp, "bcr": self.bcr}, "exactly one of cpp or bcr")

    def channel_uses(self, height: int, width: int) -> int:
        """k for an image of ``height`` × ``width`` pixels (see :func:`linksim.units.channel_uses`)."""
        return units.channel_uses(height, width, cpp=self.cpp, bcr=self.bcr)

    @property
    def rho(self) -> float:
        """The BCR ρ of this budget (``bcr``, or ``cpp`` / 3)."""
        return self.bcr if self.bcr is not None else self.cpp / 3

    def describe(self) -> str:
        """``'cpp 1/16 (ρ = 1/48)'``-style label for plots."""
        cpp = self.cpp if self.cpp is not None else 3 * self.bcr
        return f"cpp {_fraction(cpp)} (ρ = {_fraction(cpp / 3)})"


def _fraction(x: float) -> str:
    f = Fraction(x).limit_denominator(10000)
    return str(f) if abs(float(f) - x) < 1e-12 else f"{x:.4g}"


@dataclass
class LinkOutput:
    """The receiver's view of one batch of images.

    Attributes
    ----------
    x_hat : float32 [B, 3, H, W] in [0, 1]
        Receiver output.
    k : int
        Complex channel uses given to each image.
    bits : int64 [B]
        Source bits carried (codec payload bits; 0 for analog schemes).
    decoded : bool [B]
        Whether the receiver recovered the payload (always True for analog schemes).
    extras : dict[str, list]
        Per-image scheme-specific reports (codec quality, MCS, codeword errors, ...),
        each a list of length B; they become columns of ``results.csv``.
    x_hat_ids : list of hashables, or None
        Per image, an identifier of ``x_hat``'s content that the scheme knows without reading
        the pixels (a codec point, the failure fill): equal ids mean equal images within one
        run. The runner then reuses metrics without hashing the image; None: it hashes.
    """

    x_hat: torch.Tensor
    k: int
    bits: torch.Tensor
    decoded: torch.Tensor
    extras: dict[str, list[Any]] = field(default_factory=dict)
    x_hat_ids: list[Hashable] | None = None


class Scheme:
    """Base class: ``run(images, snr_db, channel, generator) -> LinkOutput``.

    Subclasses set ``name`` (the label in results) and ``kind`` (``separate``,
    ``capacity``, ``deepjscc``, ...), and receive their :class:`Bandwidth` at construction.
    """

    kind: str = "scheme"

    def __init__(self, name: str, bandwidth: Bandwidth):
        self.name = name
        self.bandwidth = bandwidth

    def run(self, images: torch.Tensor, snr_db: float, channel, generator: torch.Generator) -> LinkOutput:
        """Send ``images`` (float32 [B,3,H,W] in [0,1]) over ``channel`` at ``snr_db``."""
        raise NotImplementedError
