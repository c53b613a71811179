r"""Units of the link: one definition each (docs/ARCHITECTURE.md §2).

==================  ===========================================================
quantity            definition
==================  ===========================================================
SNR                 :math:`P/\sigma^2` per *complex* channel use, in dB, with
                    average transmit power :math:`P = 1`
k                   complex channel uses spent on one image
BCR :math:`\rho`    :math:`k/n` with :math:`n = 3HW` real source samples
cpp                 :math:`k/(HW)`, complex channel uses per pixel
                    (:math:`\rho = \mathrm{cpp}/3`)
bpp                 source bits / :math:`(HW)`
Eb/N0               :math:`\mathrm{SNR} - 10\log_{10}(mR)` in dB, for
                    :math:`m` bits per symbol and code rate :math:`R`
power normalization :math:`z \leftarrow \sqrt{kP}\, z/\lVert z\rVert` per image,
                    so :math:`\lVert z\rVert^2 = kP` exactly
==================  ===========================================================

Every function works on Python numbers; the element-wise ones
(:func:`db_to_linear`, :func:`linear_to_db`, :func:`noise_variance`,
:func:`ebno_db`, :func:`snr_db_from_ebno`, :func:`capacity_bits`) also accept
``torch.Tensor`` and ``numpy.ndarray`` and return the same type.

Example
-------
>>> from linksim import units
>>> k = units.channel_uses(32, 32, cpp=1/6)        # rho = 1/18
>>> k, units.bcr(k, 32, 32)
(170, 0.055338541666666664)
>>> units.noise_variance(10.0)
0.1
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Union

import numpy as np
import torch

from linksim.errors import ConfigError

__all__ = [
    "db_to_linear",
    "linear_to_db",
    "noise_variance",
    "channel_uses",
    "bcr",
    "cpp",
    "bpp",
    "ebno_db",
    "snr_db_from_ebno",
    "normalize_power",
    "capacity_bits",
]

Number = Union[float, int]
ArrayLike = Union[float, int, np.ndarray, torch.Tensor]

# Slack added before flooring cpp·H·W (or bcr·3·H·W) so that values such as
# cpp = 1/9 on a 15x15 image ((1/9)*225 = 24.999999999999996 in floating point)
# give the k a human expects (25), not one less.
_FLOOR_EPS = 1e-9


def _log10(x: ArrayLike) -> ArrayLike:
    if isinstance(x, torch.Tensor):
        return torch.log10(x)
    if isinstance(x, np.ndarray):
        return np.log10(x)
    return math.log10(x)


def _log2(x: ArrayLike) -> ArrayLike:
    if isinstance(x, torch.Tensor):
        return torch.log2(x)
    if isinstance(x, np.ndarray):
        return np.log2(x)
    return math.log2(x)


def db_to_linear(db: ArrayLike) -> ArrayLike:
    r"""Power ratio in dB → linear: :math:`10^{x/10}`.

    :param db: float, ``numpy.ndarray`` or ``torch.Tensor`` (any shape), dB.
    :output: same type and shape, linear power ratio.

    >>> db_to_linear(10.0)
    10.0
    """
    return 10.0 ** (db / 10.0)


def linear_to_db(lin: ArrayLike) -> ArrayLike:
    r"""Power ratio linear → dB: :math:`10\log_{10}(x)`.

    :param lin: float, ``numpy.ndarray`` or ``torch.Tensor`` (any shape), > 0.
    :output: same type and shape, dB.

    >>> linear_to_db(100.0)
    20.0
    """
    return 10.0 * _log10(lin)


def noise_variance(snr_db: ArrayLike, power: Number = 1.0) -> ArrayLike:
    r"""Noise variance per complex channel use: :math:`\sigma^2 = P/10^{\mathrm{SNR}/10}`.

    The noise is circular: :math:`\sigma^2/2` per real dimension.

    :param snr_db: float, ``numpy.ndarray`` or ``torch.Tensor``, SNR in dB.
    :param power: average transmit power :math:`P` per complex use (default 1).
    :output: same type and shape as ``snr_db``, :math:`\sigma^2` (linear).

    >>> noise_variance(20.0)
    0.01
    """
    return power / db_to_linear(snr_db)


def _check_positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(field, value, "a positive integer")
    return int(value)


def _check_real(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(field, value, "a finite real number")
    return float(value)


def channel_uses(height: int, width: int, *, cpp: float | None = None, bcr: float | None = None) -> int:
    r"""Complex channel uses k for one :math:`H\times W` RGB image.

    Exactly one of ``cpp`` and ``bcr`` must be given:

    * ``cpp``: :math:`k = \lfloor \mathrm{cpp}\cdot H W + 10^{-9}\rfloor`
    * ``bcr``: :math:`k = \lfloor \rho\cdot 3 H W + 10^{-9}\rfloor`

    Rounding is *down* (a scheme never gets more channel uses than asked for);
    the :math:`10^{-9}` slack only absorbs floating-point error, e.g.
    ``cpp=1/9`` on 15×15 gives 25, not 24, and ``bcr=0.7`` on 10×10 gives 210.
    Use :func:`bcr` / :func:`cpp` on the returned k to report the rate that is
    actually used.

    :param height: H, positive int (pixels).
    :param width: W, positive int (pixels).
    :param cpp: complex uses per pixel, :math:`0 < \mathrm{cpp} \le 3`.
    :param bcr: bandwidth compression ratio :math:`\rho = k/(3HW)`, :math:`0 < \rho \le 1`.
    :output k: int ≥ 1.
    :raises ConfigError: field ``"cpp"``/``"bcr"`` for values out of range, for
        both or neither given, or when the result k < 1; ``"height"``/``"width"``
        for non-positive sizes.

    >>> channel_uses(32, 32, bcr=1/12)
    256
    >>> channel_uses(32, 32, cpp=0.25)
    256
    """
    h = _check_positive_int("height", height)
    w = _check_positive_int("width", width)
    if (cpp is None) == (bcr is None):
        raise ConfigError("cpp", cpp, "exactly one of cpp and bcr (got both or neither)")
    if bcr is not None:
        value = _check_real("bcr", bcr)
        if not 0.0 < value <= 1.0:
            raise ConfigError("bcr", bcr, "a bandwidth compression ratio in (0, 1]")
        field, k = "bcr", math.floor(value * 3 * h * w + _FLOOR_EPS)
    else:
        value = _check_real("cpp", cpp)
        if not 0.0 < value <= 3.0:
            raise ConfigError("cpp", cpp, "channel uses per pixel in (0, 3]")
        field, k = "cpp", math.floor(value * h * w + _FLOOR_EPS)
    if k < 1:
        raise ConfigError(field, value, f"a value giving at least one channel use on a {h}x{w} image")
    return int(k)


def bcr(k: Number, height: int, width: int) -> float:
    r"""Bandwidth compression ratio :math:`\rho = k/(3HW)`.

    >>> bcr(256, 32, 32)
    0.08333333333333333
    """
    return k / (3.0 * height * width)


def cpp(k: Number, height: int, width: int) -> float:
    r"""Complex channel uses per pixel :math:`k/(HW)` (:math:`= 3\rho`).

    >>> cpp(256, 32, 32)
    0.25
    """
    return k / float(height * width)


def bpp(bits: Number, height: int, width: int) -> float:
    r"""Source bits per pixel: bits / (HW).

    >>> bpp(2048, 32, 32)
    2.0
    """
    return bits / float(height * width)


def _check_mr(bits_per_symbol: Number, code_rate: Number) -> float:
    if isinstance(bits_per_symbol, bool) or not isinstance(bits_per_symbol, Real) or bits_per_symbol <= 0:
        raise ConfigError("bits_per_symbol", bits_per_symbol, "a positive number")
    if isinstance(code_rate, bool) or not isinstance(code_rate, Real) or not 0.0 < code_rate <= 1.0:
        raise ConfigError("code_rate", code_rate, "a code rate in (0, 1]")
    return float(bits_per_symbol) * float(code_rate)


def ebno_db(snr_db: ArrayLike, bits_per_symbol: Number, code_rate: Number = 1.0) -> ArrayLike:
    r"""Eb/N0 in dB from the SNR per complex use: :math:`\mathrm{SNR} - 10\log_{10}(mR)`.

    :param snr_db: SNR in dB (float / array / tensor).
    :param bits_per_symbol: m (1 BPSK, 2 QPSK, 4 16-QAM).
    :param code_rate: R in (0, 1] (1 = uncoded).

    >>> round(ebno_db(10.0, 4, 0.5), 6)     # 16-QAM rate 1/2: 2 info bits per use
    6.9897
    """
    return snr_db - 10.0 * math.log10(_check_mr(bits_per_symbol, code_rate))


def snr_db_from_ebno(ebno_db: ArrayLike, bits_per_symbol: Number, code_rate: Number = 1.0) -> ArrayLike:
    r"""Inverse of :func:`ebno_db`: :math:`\mathrm{SNR} = E_b/N_0 + 10\log_{10}(mR)` (dB).

    >>> round(snr_db_from_ebno(0.0, 2, 1.0), 6)
    3.0103
    """
    return ebno_db + 10.0 * math.log10(_check_mr(bits_per_symbol, code_rate))


def normalize_power(z: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    r"""Per-image power normalization :math:`z \leftarrow \sqrt{kP}\,z/\lVert z\rVert`.

    After the call every row satisfies :math:`\lVert z_b\rVert^2 = kP` (to float
    precision), i.e. average power :math:`P` per complex use. Differentiable
    (the gradient of :math:`z/\lVert z\rVert` is well defined for non-zero z).

    :param z: complex tensor [B, k] (complex64 or complex128).
    :param power: P > 0, average power per complex use (default 1).
    :output: complex tensor [B, k], same dtype and device as ``z``.
    :raises ConfigError: field ``"z"`` if ``z`` is not complex [B, k] or a row is
        all zeros (its direction is undefined; silently returning zeros or NaN
        would hide an encoder bug); field ``"power"`` if P ≤ 0. The zero check
        costs one host synchronization per call.

    >>> z = torch.randn(4, 128, dtype=torch.complex64)
    >>> zn = normalize_power(z)
    >>> torch.allclose(zn.abs().square().sum(-1), torch.full((4,), 128.0))
    True
    """
    if not isinstance(z, torch.Tensor) or not z.is_complex() or z.dim() != 2:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ConfigError("z", shape, "a complex tensor of shape [B, k]")
    p = _check_real("power", power)
    if p <= 0.0:
        raise ConfigError("power", power, "a positive average power")
    k = z.shape[-1]
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)  # real, [B,1]
    if bool((norm == 0).any()):
        raise ConfigError("z", "a row with zero norm", "non-zero symbols for every image")
    return z * (math.sqrt(k * p) / norm)


def capacity_bits(k: ArrayLike, snr_db: ArrayLike) -> ArrayLike:
    r"""AWGN Shannon capacity of k complex uses: :math:`k\log_2(1+\mathrm{SNR})` bits.

    :param k: number of complex channel uses.
    :param snr_db: SNR per complex use in dB (float / array / tensor).
    :output: bits (float, or the array/tensor type of the inputs).

    >>> capacity_bits(100, 0.0)
    100.0
    """
    return k * _log2(1.0 + db_to_linear(snr_db))
