"""Channel output record and the channel base class."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Optional, Union

import numpy as np
import torch

from linksim.errors import ConfigError
from linksim.units import noise_variance
from linksim.channel.noise import GeneratorAWGN

__all__ = ["ChannelOutput", "Channel"]


@dataclass
class ChannelOutput:
    r"""What the receiver sees: :math:`y = h\,z + w` and perfect CSI.

    :ivar y: complex64 [B, k], received symbols.
    :ivar h: complex64 [B, k], channel coefficient per symbol (all ones for
        AWGN); known perfectly at the receiver.
    :ivar noise_var: float32 [B], :math:`\sigma^2 = P/\mathrm{SNR}` per complex
        use with P = 1 (σ²/2 per real dimension).

    (complex128/float64 instead when the input was complex128.)
    """

    y: torch.Tensor
    h: torch.Tensor
    noise_var: torch.Tensor


def _precision(x: torch.Tensor) -> str:
    return "double" if x.dtype == torch.complex128 else "single"


class Channel(torch.nn.Module):
    r"""Base class of linksim channels: :math:`y = h\,x + w`, :math:`w \sim \mathcal{CN}(0, \sigma^2)`.

    Subclasses implement :meth:`draw_coefficients`. The noise is added by
    Sionna's AWGN block (:class:`~linksim.channel.noise.GeneratorAWGN`), with
    :math:`\sigma^2 = 10^{-\mathrm{SNR}/10}` (P = 1: the caller power-normalizes
    ``x`` with :func:`linksim.units.normalize_power`).

    Randomness: every draw comes from ``generator`` — first the channel
    coefficients (fading channels only), then the noise (real parts, then
    imaginary parts). ``generator=None`` uses Sionna's config RNG
    (``sionna.phy.config.seed``) and is not reproducible per call.

    Differentiable w.r.t. ``x``; the device follows ``x`` (CPU or CUDA; the
    generator must live on the same device). Channels hold no parameters.

    :input x: complex64 (or complex128) [B, k], power-normalized symbols.
    :input snr_db: float, 0-dim tensor, or tensor/array [B]: SNR per complex use (dB); not differentiated.
    :input generator: ``torch.Generator`` on ``x.device``, or ``None``.
    :output: :class:`ChannelOutput` with ``y``, ``h`` [B, k] and ``noise_var`` [B].
    :raises ConfigError: field ``"x"`` (not complex [B, k]), ``"snr_db"``
        (non-finite or wrong shape), ``"generator"`` (wrong device).
    """

    name: str = "channel"

    def __init__(self) -> None:
        super().__init__()
        self._awgn: dict[tuple[str, str], GeneratorAWGN] = {}

    # -- pieces -------------------------------------------------------------
    def draw_coefficients(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> Optional[torch.Tensor]:
        """Channel coefficients h, complex [B, k] like ``x``; ``None`` means h = 1."""
        raise NotImplementedError

    def to_spec(self) -> dict:
        """The spec :func:`linksim.channel.make_channel` turns back into this channel."""
        return {"type": self.name}

    def _noise_block(self, x: torch.Tensor) -> GeneratorAWGN:
        key = (str(x.device), _precision(x))
        if key not in self._awgn:
            self._awgn[key] = GeneratorAWGN(precision=key[1], device=key[0])
        return self._awgn[key]

    @staticmethod
    def _check_x(x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_complex() or x.dim() != 2 or x.shape[-1] < 1:
            got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError("x", got, "a complex tensor of shape [B, k] (complex64)")
        return x

    @staticmethod
    def _check_snr(snr_db, x: torch.Tensor) -> torch.Tensor:
        rdtype = torch.float64 if x.dtype == torch.complex128 else torch.float32
        if isinstance(snr_db, np.ndarray) and snr_db.dtype.kind in "fiu":
            snr_db = torch.from_numpy(np.asarray(snr_db, dtype=np.float64))
        if isinstance(snr_db, torch.Tensor):
            snr = snr_db.detach().to(device=x.device, dtype=rdtype)
            if snr.dim() == 0 or (snr.dim() == 1 and snr.numel() == 1):
                snr = snr.reshape(()).expand(x.shape[0])
            elif snr.dim() != 1 or snr.shape[0] != x.shape[0]:
                raise ConfigError("snr_db", tuple(snr_db.shape), f"a scalar or a tensor of shape [B] = [{x.shape[0]}]")
            if not bool(torch.isfinite(snr).all()):
                raise ConfigError("snr_db", snr_db.tolist(), "finite SNR values in dB")
            return snr
        if isinstance(snr_db, bool) or not isinstance(snr_db, Real) or not math.isfinite(snr_db):
            raise ConfigError("snr_db", snr_db, "a finite SNR in dB (float or tensor [B])")
        return torch.full((x.shape[0],), float(snr_db), dtype=rdtype, device=x.device)

    @staticmethod
    def _check_generator(generator, x: torch.Tensor) -> None:
        if generator is None:
            return
        if not isinstance(generator, torch.Generator):
            raise ConfigError("generator", type(generator).__name__, "a torch.Generator or None")
        g, d = torch.device(generator.device), x.device
        if g.type != d.type or (g.index is not None and d.index is not None and g.index != d.index):
            raise ConfigError("generator", str(generator.device), f"a generator on the device of x ({d})")

    # -- forward ------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        snr_db: Union[float, torch.Tensor],
        generator: Optional[torch.Generator] = None,
    ) -> ChannelOutput:
        x = self._check_x(x)
        snr = self._check_snr(snr_db, x)
        self._check_generator(generator, x)
        noise_var = noise_variance(snr)  # [B], P = 1
        h = self.draw_coefficients(x, generator)
        hx = x if h is None else h * x
        y = self._noise_block(x).add_noise(hx, noise_var, generator)  # no [B] -> [B,1] inside Sionna
        if h is None:
            h = torch.ones_like(x)  # no grad: h is not a function of x
        return ChannelOutput(y=y, h=h, noise_var=noise_var)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
