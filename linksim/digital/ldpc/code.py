"""LDPC codes behind one small interface: :class:`LDPCCode`, :func:`get_code`, :func:`available_codes`,
and the encoder as a block of the separate chain, :class:`LDPCEncoder`.

Two families:

- ``"wifi-<n>-<a>/<b>"``: the IEEE 802.11n codes (:mod:`linksim.digital.ldpc.wifi`),
  n in {648, 1296, 1944}, rate in {1/2, 2/3, 3/4, 5/6}. Systematic encoding:
  ``codeword[:, :k] == info`` and the parity bits are ``p = P u mod 2`` with a dense
  GF(2) generator ``P = H_p^{-1} H_u`` precomputed once per code (``H = [H_u | H_p]``,
  ``H_p`` the last n-k columns). Encoding is one float32 matmul followed by ``mod 2``,
  exact because every partial sum is an integer < 2^24.
- ``"nr-<k>-<n>"`` (also accepted: ``"nr-k<k>-n<n>"``): 3GPP 5G NR LDPC with rate
  matching through Sionna's :class:`~sionna.phy.fec.ldpc.LDPC5GEncoder`
  (:mod:`linksim.digital.ldpc.nr`). Its transmitted code is a punctured/shortened
  version of the mother code, so ``H`` is ``None`` and ``codeword[:, :k]`` is *not*
  the info word.

Example
-------
>>> import torch
>>> from linksim.digital.ldpc import get_code
>>> code = get_code("wifi-648-1/2")
>>> code.n, code.k, code.rate
(648, 324, 0.5)
>>> g = torch.Generator().manual_seed(0)
>>> u = torch.randint(0, 2, (4, code.k), generator=g).float()
>>> c = code.encode(u)                    # [4, 648] float32 in {0, 1}
>>> bool((c[:, :code.k] == u).all())
True
>>> bool((LDPCEncoder("wifi-648-1/2")(u) == c).all())      # the same encoder as a block
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from linksim.errors import ConfigError
from linksim.digital.ldpc.gf2 import gf2_solve
from linksim.digital.ldpc.wifi import WIFI_LIFTING, WIFI_RATES, wifi_parity_check_matrix

_WIFI_RE = re.compile(r"^wifi-(\d+)-(\d)/(\d)$")
_NR_RE = re.compile(r"^nr-k?(\d+)-n?(\d+)$")
_ALLOWED = (
    "a Wi-Fi code 'wifi-<n>-<a>/<b>' with n in 648, 1296, 1944 and rate in 1/2, 2/3, 3/4, 5/6 "
    "(e.g. 'wifi-1944-2/3'), or a 5G NR code 'nr-<k>-<n>' with 12 <= k <= 8448 and k < n "
    "(e.g. 'nr-500-1000')"
)


@dataclass(frozen=True, eq=False)
class LDPCCode:
    """One binary LDPC code: its parameters, parity-check matrix and encoder.

    Build it with :func:`get_code`; do not construct it by hand.

    :param name: Canonical name, e.g. ``"wifi-1944-2/3"`` or ``"nr-500-1000"``.
    :param n: Codeword length (transmitted bits).
    :param k: Information bits per codeword.
    :param rate: ``k / n``.
    :param H: [n-k, n] `scipy.sparse.csr_matrix` of `uint8`, or `None` where the family
        exposes none (5G NR: the transmitted code is rate-matched from a mother code).
    :param family: ``"wifi"`` or ``"nr"``.
    """

    name: str
    n: int
    k: int
    rate: float
    H: sp.csr_matrix | None
    family: str
    _encode: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def encode(self, info: torch.Tensor) -> torch.Tensor:
        """Encode information words.

        :param info: [B, k] (or [..., k]) `torch.float32` with values in {0, 1}.
        :output codeword: [B, n] (or [..., n]) `torch.float32` in {0, 1}, same device.
            Systematic for the Wi-Fi codes: ``codeword[..., :k] == info``.
        :raises ConfigError: ``info`` has the wrong last dimension or dtype.
        """
        if not isinstance(info, torch.Tensor) or info.dtype != torch.float32 or info.ndim < 1 \
                or info.shape[-1] != self.k:
            got = tuple(info.shape) if isinstance(info, torch.Tensor) else type(info).__name__
            dtype = getattr(info, "dtype", None)
            raise ConfigError("info", f"{got} {dtype}", f"a torch.float32 tensor of shape [..., {self.k}]")
        return self._encode(info)


def _wifi_code(n: int, rate: str) -> LDPCCode:
    H = wifi_parity_check_matrix(n, rate)
    m = H.shape[0]
    k = n - m
    dense = H.toarray()
    P = gf2_solve(dense[:, k:], dense[:, :k])             # [m, k], p = P u mod 2
    Pt = torch.from_numpy(P.T.astype(np.float32))         # [k, m]

    def encode(info: torch.Tensor) -> torch.Tensor:
        pt = Pt.to(info.device)
        parity = torch.remainder(info @ pt, 2.0)
        return torch.cat([info, parity], dim=-1)

    return LDPCCode(name=f"wifi-{n}-{rate}", n=n, k=k, rate=k / n, H=H, family="wifi",
                    _encode=encode, _extra={"P": P})


@lru_cache(maxsize=64)
def get_code(name: str) -> LDPCCode:
    """Look up a code by name (cached: the same object for the same canonical name).

    :param name: ``"wifi-<n>-<a>/<b>"`` or ``"nr-<k>-<n>"`` (see the module docstring).
    :output code: :class:`LDPCCode`.
    :raises ConfigError: (field ``code``) for unknown names or unsupported parameters.
    """
    if not isinstance(name, str):
        raise ConfigError("code", name, _ALLOWED)
    m = _WIFI_RE.match(name.strip())
    if m:
        n, rate = int(m.group(1)), f"{m.group(2)}/{m.group(3)}"
        if n in WIFI_LIFTING and rate in WIFI_RATES:
            return _wifi_code(n, rate)
        raise ConfigError("code", name, _ALLOWED)
    m = _NR_RE.match(name.strip())
    if m:
        from linksim.digital.ldpc.nr import nr_code  # Sionna import only when needed

        return nr_code(int(m.group(1)), int(m.group(2)), name, _ALLOWED)
    raise ConfigError("code", name, _ALLOWED)


def available_codes() -> list[str]:
    """Names of the fixed codes: the 12 IEEE 802.11n codes.

    5G NR codes are parametric (``"nr-<k>-<n>"``, 12 <= k <= 8448, k < n) and are
    accepted by :func:`get_code` without being listed here.
    """
    return [f"wifi-{n}-{r}" for n in sorted(WIFI_LIFTING) for r in WIFI_RATES]


class LDPCEncoder:
    """The LDPC encoder as a block of the separate chain: information words in, codewords out.

    A thin callable around :meth:`LDPCCode.encode` (same arithmetic), so that the chain
    encoder → mapper → channel → equalizer → demapper → decoder is made of blocks a user can
    swap or wrap (see :class:`~linksim.digital.separate.SeparateScheme`).

    :param code: An :class:`LDPCCode` or a code name for :func:`get_code`.
    :input info: float32 [B, k] (or [..., k]) with entries in {0, 1}.
    :output codeword: float32 [B, n] (or [..., n]) in {0, 1}, on ``info``'s device; systematic
        for the Wi-Fi codes (``codeword[..., :k] == info``).
    :raises ConfigError: field ``code`` for an unknown name, ``info`` for a wrong shape or dtype.

    >>> enc = LDPCEncoder("wifi-648-1/2")
    >>> enc(torch.zeros(2, enc.k)).shape
    torch.Size([2, 648])
    """

    def __init__(self, code: LDPCCode | str):
        self.code = code if isinstance(code, LDPCCode) else get_code(code)

    @property
    def k(self) -> int:
        """Information bits per codeword."""
        return self.code.k

    @property
    def n(self) -> int:
        """Codeword length (bits)."""
        return self.code.n

    def __call__(self, info: torch.Tensor) -> torch.Tensor:
        return self.code.encode(info)

    def __repr__(self) -> str:
        return f"LDPCEncoder({self.code.name!r})"
