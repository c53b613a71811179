"""BPSK, QPSK and 16-QAM with Gray labelling, through Sionna's Mapper/Demapper.

:class:`Modulation` holds one constellation; :class:`Mapper` and :class:`Demapper` are its two
halves as blocks of the separate chain (callables with the same arithmetic as
:meth:`Modulation.map` and :meth:`Modulation.demap`).

.. code-block:: python

    import torch
    from linksim.digital.modulation import make_modulation
    from linksim.channel import make_channel, equalize

    mod = make_modulation("16qam")
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (2, 1024), generator=g).float()
    out = make_channel("rayleigh-fast")(mod.map(bits), 15.0, g)
    x_hat, nv = equalize(out)
    llr = mod.demap(x_hat, nv)                 # float32 [2, 1024]
    bits_hat = (llr > 0).float()               # LLR = ln P(b=1|y)/P(b=0|y)

    # the same as blocks
    llr = Demapper("16qam")(*equalize(make_channel("awgn")(Mapper("16qam")(bits), 15.0, g)))
"""

from __future__ import annotations

from numbers import Real

import torch
from sionna.phy import mapping as sionna_mapping

from linksim.errors import ConfigError

__all__ = ["Demapper", "Mapper", "Modulation", "make_modulation", "MODULATIONS", "DEMAPPING_METHODS"]

# name -> (Sionna constellation type, bits per symbol)
MODULATIONS: dict[str, tuple[str, int]] = {
    "bpsk": ("pam", 1),
    "qpsk": ("qam", 2),
    "16qam": ("qam", 4),
}
#: Demapping rules: exact APP, or Sionna's max-log approximation.
DEMAPPING_METHODS = ("app", "maxlog")


class Modulation:
    r"""A Gray-labelled constellation with unit average energy and its APP demapper.

    Built on Sionna's ``Constellation`` / ``Mapper`` / ``Demapper("app")``:

    * ``"bpsk"``: Sionna ``"pam"`` with 1 bit — real points, bit 0 → +1, bit 1 → −1.
    * ``"qpsk"``: ``"qam"`` 2 bits — :math:`(\pm1 \pm j)/\sqrt2`; bit 0 on the real axis
      (0 → +), bit 1 on the imaginary axis.
    * ``"16qam"``: ``"qam"`` 4 bits — :math:`\{\pm1,\pm3\}^2/\sqrt{10}` (3GPP TS 38.211
      Gray labelling: bits 0, 2 on the real axis, bits 1, 3 on the imaginary axis).

    Every symbol carries ``bits_per_symbol`` bits and E|x|² = 1, so with the
    channel's SNR = 1/σ² per complex use, Eb/N0 = SNR/m (uncoded).

    LLR convention (Sionna's): :math:`\mathrm{LLR} = \ln\frac{P(b=1\mid y)}{P(b=0\mid y)}`
    — positive means "1"; hard decision ``llr > 0``. For BPSK on AWGN,
    :math:`\mathrm{LLR} = -4\,\mathrm{Re}(y)/\sigma^2`.

    Sionna blocks are created lazily per (device, precision), so inputs may
    live on CPU or CUDA; outputs are on the input's device.

    :ivar name: ``"bpsk"`` | ``"qpsk"`` | ``"16qam"``.
    :ivar bits_per_symbol: 1 | 2 | 4.
    """

    def __init__(self, name: str) -> None:
        if name not in MODULATIONS:
            raise ConfigError("modulation", name, "one of " + ", ".join(repr(n) for n in MODULATIONS))
        self.name = name
        self._ctype, self.bits_per_symbol = MODULATIONS[name]
        self._blocks: dict[tuple[str, str, str], tuple[sionna_mapping.Mapper, sionna_mapping.Demapper]] = {}

    def __repr__(self) -> str:
        return f"Modulation({self.name!r}, bits_per_symbol={self.bits_per_symbol})"

    def _get(self, device: torch.device, precision: str, method: str = "app") -> tuple[sionna_mapping.Mapper, sionna_mapping.Demapper]:
        key = (str(device), precision, method)
        if key not in self._blocks:
            const = sionna_mapping.Constellation(self._ctype, self.bits_per_symbol, precision=precision, device=key[0])
            mapper = sionna_mapping.Mapper(constellation=const, precision=precision, device=key[0])
            demapper = sionna_mapping.Demapper(method, constellation=const, precision=precision, device=key[0])
            self._blocks[key] = (mapper, demapper)
        return self._blocks[key]

    def points(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """Constellation points, complex64 [2**m]; the index's binary form (MSB first) is the label."""
        return self._get(torch.device(device), "single")[0].constellation()

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """Map bits to symbols.

        :input bits: float32 (or int/bool) [B, n] with entries in {0, 1}; n a
            multiple of ``bits_per_symbol``. Bits ``bits[:, m*i : m*(i+1)]``
            form symbol i (first bit = MSB of the Sionna label).
        :output x: complex64 [B, n/m], unit average energy, Gray labelling.
        :raises ConfigError: field ``"bits"`` (wrong shape, length or non-binary values).

        >>> make_modulation("qpsk").map(torch.tensor([[0., 0., 1., 1.]]))
        tensor([[ 0.7071+0.7071j, -0.7071-0.7071j]])
        """
        m = self.bits_per_symbol
        if not isinstance(bits, torch.Tensor) or bits.dim() != 2 or bits.shape[-1] % m != 0 or bits.is_complex():
            got = f"shape {tuple(bits.shape)}" if isinstance(bits, torch.Tensor) else type(bits).__name__
            raise ConfigError("bits", got, f"a real tensor [B, n] with n a multiple of {m} ({self.name})")
        if bits.numel() and not bool(((bits == 0) | (bits == 1)).all()):
            raise ConfigError("bits", "non-binary values", "entries in {0, 1}")
        mapper, _ = self._get(bits.device, "single")
        return mapper(bits.to(torch.int32))

    def demap(self, y: torch.Tensor, noise_var, method: str = "app") -> torch.Tensor:
        r"""Demap to bit LLRs; exact APP by default.

        ``"app"``: :math:`\mathrm{LLR}_i = \ln\frac{\sum_{c: b_i=1} e^{-|y-c|^2/\sigma^2}}{\sum_{c: b_i=0} e^{-|y-c|^2/\sigma^2}}`;
        ``"maxlog"``: the sums replaced by their largest term (Sionna's max-log).
        The sign of an APP LLR is the bit-wise MAP decision; the sign of a
        max-log LLR is the bit of the nearest constellation point (symbol ML
        decision). They coincide for BPSK and QPSK; for 16-QAM the APP sign
        makes slightly fewer bit errors at low SNR (see tests/test_modulation_ber.py).

        :input y: complex64 [B, s], received (equalized) symbols.
        :input noise_var: float or float tensor broadcastable to ``y`` with the
            same number of dims (scalar, [B, 1] or [B, s]) — σ² per complex
            symbol; after fading, pass ``equalize(out)[1]`` = σ²/|h|². A 1-D
            tensor [B] is refused (it would broadcast along symbols): use
            ``noise_var[:, None]``.
        :input method: ``"app"`` (default) or ``"maxlog"``.
        :output llr: float32 [B, s·m], LLR = ln P(b=1|y)/P(b=0|y), bit order as in :meth:`map`.
        :raises ConfigError: field ``"y"``, ``"noise_var"`` or ``"method"``.

        >>> mod = make_modulation("bpsk")
        >>> mod.demap(torch.tensor([[0.5 + 0j]]), 1.0)      # -4*0.5/1
        tensor([[-2.]])
        """
        _check_method(method)
        if not isinstance(y, torch.Tensor) or not y.is_complex() or y.dim() != 2:
            got = f"{y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ConfigError("y", got, "a complex tensor of shape [B, s]")
        if isinstance(noise_var, torch.Tensor):
            nv = noise_var.to(device=y.device, dtype=torch.float32)
            ok = nv.dim() == 0 or nv.dim() == y.dim()
            if ok:
                try:
                    torch.broadcast_shapes(nv.shape, y.shape)
                except RuntimeError:
                    ok = False
            if not ok:
                raise ConfigError(
                    "noise_var", tuple(noise_var.shape), f"a scalar or a tensor broadcastable to y {tuple(y.shape)} with the same rank, e.g. [B, 1] (use noise_var[:, None] for [B])"
                )
        elif isinstance(noise_var, Real) and not isinstance(noise_var, bool):
            nv = torch.tensor(float(noise_var), dtype=torch.float32, device=y.device)
        else:
            raise ConfigError("noise_var", noise_var, "a positive float or float tensor")
        if not bool((torch.isfinite(nv) & (nv > 0)).all()):
            raise ConfigError("noise_var", "non-positive or non-finite values", "positive finite noise variances")
        _, demapper = self._get(y.device, "single", method)
        return demapper(y.to(torch.complex64), nv)


def make_modulation(name: str) -> Modulation:
    """Build a :class:`Modulation`: ``"bpsk"`` | ``"qpsk"`` | ``"16qam"`` (case-insensitive).

    :raises ConfigError: field ``"modulation"`` for any other name.
    """
    key = name.lower().replace("-", "") if isinstance(name, str) else name
    if key not in MODULATIONS:
        raise ConfigError("modulation", name, "one of 'bpsk', 'qpsk', '16qam'")
    return Modulation(key)


def _check_method(method) -> None:
    if method not in DEMAPPING_METHODS:
        raise ConfigError("method", method, "'app' or 'maxlog'")


def _modulation(modulation: Modulation | str) -> Modulation:
    return modulation if isinstance(modulation, Modulation) else make_modulation(modulation)


class Mapper:
    """Bits to symbols, as a block of the separate chain (:meth:`Modulation.map`).

    :param modulation: A :class:`Modulation` or its name (``"bpsk"`` | ``"qpsk"`` | ``"16qam"``).
    :input bits: float32 (or int/bool) [B, N·m] with entries in {0, 1}, m = ``bits_per_symbol``;
        bits ``m·i … m·i+m-1`` of a row form symbol i.
    :output x: complex64 [B, N], unit average energy (E|x|² = 1), Gray labelling.
    :raises ConfigError: field ``modulation`` for an unknown name, ``bits`` for a bad input.

    >>> Mapper("qpsk")(torch.tensor([[0., 0., 1., 1.]]))
    tensor([[ 0.7071+0.7071j, -0.7071-0.7071j]])
    """

    def __init__(self, modulation: Modulation | str):
        self.modulation = _modulation(modulation)

    @property
    def bits_per_symbol(self) -> int:
        return self.modulation.bits_per_symbol

    def __call__(self, bits: torch.Tensor) -> torch.Tensor:
        return self.modulation.map(bits)

    def __repr__(self) -> str:
        return f"Mapper({self.modulation.name!r})"


class Demapper:
    """Received symbols to bit LLRs, as a block of the separate chain (:meth:`Modulation.demap`).

    :param modulation: A :class:`Modulation` or its name.
    :param method: ``"app"`` (exact, default) or ``"maxlog"``.
    :input y: complex64 [B, N], equalized symbols.
    :input noise_var: σ² per complex symbol (after zero-forcing: σ²/|h|²), a positive float or a
        float tensor of the same rank as ``y`` broadcastable to it (scalar, [B, 1] or [B, N]).
    :output llr: float32 [B, N·m], LLR = ln P(b=1|y)/P(b=0|y) (positive means 1), bit order as
        the :class:`Mapper`'s.
    :raises ConfigError: field ``modulation``, ``method``, ``y`` or ``noise_var``.

    >>> Demapper("bpsk")(torch.tensor([[0.5 + 0j]]), 1.0)      # -4·Re(y)/σ²
    tensor([[-2.]])
    """

    def __init__(self, modulation: Modulation | str, method: str = "app"):
        _check_method(method)
        self.modulation, self.method = _modulation(modulation), method

    @property
    def bits_per_symbol(self) -> int:
        return self.modulation.bits_per_symbol

    def __call__(self, y: torch.Tensor, noise_var) -> torch.Tensor:
        return self.modulation.demap(y, noise_var, self.method)

    def __repr__(self) -> str:
        return f"Demapper({self.modulation.name!r}, method={self.method!r})"
