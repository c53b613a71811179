"""SING-INN: a conditional invertible network that splits an image into a coarse part and details.

SING's second stage (SING-INN) reads the DeepJSCC output x̂ as a measurement of the
transmitted image through ``A = avgpool(s)``, s = 2**levels, as SING-Zero does — but the
"range part" is learned: an invertible network ``F(x, snr) = (coarse, details)`` is
trained so that its coarse part matches the pooled receiver output,

    L = ‖coarse(x, snr) − avgpool_s(x̂)‖²                               (SING eq. 16)

and during sampling the restorer computes ``(c, d) = F(x̂₀, snr)`` of the prior's clean
estimate, replaces the coarse part by the received one (``c ← avgpool_s(x̂)``) and
inverts: ``x̂₀ ← F⁻¹(c, d, snr)``. The network is conditioned on the channel SNR through
FiLM (SING eqs. 14–15); with ``conditional=False`` it is CommIN's unconditioned INN.

Structure (one level ℓ = 1 … L; the coarse part of level ℓ is the input of level ℓ+1)::

    c, d = HaarLevel(c)                         c [B,C,h,w], d [B,3C,h,w], h = H/2**ℓ
    for k = 1 … pairs:                          additive lifting (invertible for any P, U)
        d ← d − P_ℓk(c, e)                      predict the details from the coarse part
        c ← c + U_ℓk(d, e)                      update the coarse part from the details
    details[ℓ−1] = d                            the level's details are then frozen

with ``e = SNREmbedding(snr_db)`` shared by every P and U. The inverse runs the levels
from coarsest to finest and, inside a level, the pairs in reverse:
``c ← c − U_ℓk(d, e); d ← d + P_ℓk(c, e)``, then the inverse Haar step. Each step is undone
exactly (up to float rounding) whatever P and U compute, so the whole map is invertible
for any weights. The last convolution of every P and U starts at zero: an untrained
network *is* the Haar split, whose coarse part is exactly ``avg_pool2d(x, 2**levels)``.

Images are float [B, C, H, W] with H and W multiples of 2**levels; the unit of the pixel
values does not matter (the restorer uses [0, 1]). SNRs are in dB.

Nothing here imports ``linksim.channel``, ``linksim.digital`` or ``linksim.jscc``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from linksim.errors import ConfigError, checked_fields

__all__ = ["HaarSplit", "SNREmbedding", "CondBlock", "LiftingNet", "ConditionalINNConfig", "ConditionalINN"]

SNR = Union[float, int, torch.Tensor, None]


def _is_int(v, minimum: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= minimum


# --------------------------------------------------------------------------------------- Haar


def _haar_forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One lifting Haar level: x [B,C,H,W] → (LL [B,C,H/2,W/2], details [B,3C,H/2,W/2])."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    # Rows: predict (difference) then update (mean), the 1-D lifting Haar.
    dt = a - b
    st = b + dt / 2          # (a + b)/2
    db = c - d
    sb = d + db / 2          # (c + d)/2
    # Columns, on the row means and on the row differences.
    v = st - sb              # (a + b − c − d)/2   vertical detail
    ll = sb + v / 2          # (a + b + c + d)/4   average
    dd = dt - db             #  a − b − c + d      diagonal detail
    hd = db + dd / 2         # (a − b + c − d)/2   horizontal detail
    return ll, torch.cat([v, hd, dd], dim=1)


def _haar_inverse(ll: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
    """Undo :func:`_haar_forward` step by step (each lifting step in reverse)."""
    v, hd, dd = details.chunk(3, dim=1)
    sb = ll - v / 2
    st = sb + v
    db = hd - dd / 2
    dt = db + dd
    b = st - dt / 2
    a = b + dt
    d = sb - db / 2
    c = d + db
    B, C, h, w = ll.shape
    x = ll.new_empty(B, C, 2 * h, 2 * w)
    x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2] = a, b, c, d
    return x


def _check_levels(levels) -> int:
    if not _is_int(levels, 1):
        raise ConfigError("levels", levels, "an integer ≥ 1")
    return levels


def _check_image(x, levels: int, channels: Optional[int] = None) -> None:
    s = 2 ** levels
    ok = isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()
    if ok and channels is not None and x.shape[1] != channels:
        ok = False
    if ok and (x.shape[-2] % s or x.shape[-1] % s or x.shape[-2] == 0 or x.shape[-1] == 0):
        ok = False
    if not ok:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        ch = "C" if channels is None else str(channels)
        raise ConfigError("x", shape, f"a float tensor [B, {ch}, H, W] with H and W positive multiples of "
                                      f"2**levels = {s}")


def _check_details(coarse, details, levels: int, channels: Optional[int] = None) -> None:
    if not isinstance(coarse, torch.Tensor) or coarse.dim() != 4 or not coarse.is_floating_point() or (
            channels is not None and coarse.shape[1] != channels):
        shape = tuple(coarse.shape) if isinstance(coarse, torch.Tensor) else type(coarse).__name__
        raise ConfigError("coarse", shape, f"a float tensor [B, {channels or 'C'}, H/2**levels, W/2**levels]")
    B, C, h, w = coarse.shape
    expected = [(B, 3 * C, h * 2 ** (levels - 1 - i), w * 2 ** (levels - 1 - i)) for i in range(levels)]
    got = [tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__ for d in details] \
        if isinstance(details, (list, tuple)) else type(details).__name__
    if got != expected:
        raise ConfigError("details", got, f"a list of {levels} tensors of shapes {expected} (finest level first)")


class HaarSplit(nn.Module):
    """Exactly invertible lifting Haar transform with *average* normalization (no parameters).

    One level maps each 2×2 block ``(a b / c d)`` to

    * LL = (a + b + c + d)/4  (the average),
    * V  = (a + b − c − d)/2  (top minus bottom),
    * H  = (a − b + c − d)/2  (left minus right),
    * D  =  a − b − c + d     (diagonal),

    computed by 1-D lifting steps (row difference, row mean, then the same on columns), and
    inverted by running those steps backwards, so ``inverse(forward(x)) == x`` up to float
    rounding. The normalization is not orthonormal: the coarse part after L levels is the
    mean of each s×s block, s = 2**L, i.e. equals ``torch.nn.functional.avg_pool2d(x, s)``
    up to float rounding.

    :param levels: L ≥ 1.

    ``forward(x)``: x float [B, C, H, W], H and W multiples of 2**L →
    ``(coarse [B, C, H/s, W/s], details)`` with ``details[i]`` float [B, 3C, H/2**(i+1), W/2**(i+1)]
    (finest level first; channels ordered band-major: V of every channel, then H, then D).
    ``inverse(coarse, details)`` → x.
    """

    def __init__(self, levels: int = 2):
        super().__init__()
        self.levels = _check_levels(levels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        _check_image(x, self.levels)
        details = []
        for _ in range(self.levels):
            x, d = _haar_forward(x)
            details.append(d)
        return x, details

    def inverse(self, coarse: torch.Tensor, details: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_details(coarse, details, self.levels)
        for d in reversed(details):
            coarse = _haar_inverse(coarse, d)
        return coarse


# ------------------------------------------------------------------------------ conditioning


class SNREmbedding(nn.Module):
    """SNR (dB) → embedding: sinusoidal features of snr_db/20, then Linear → SiLU → Linear.

    The features are ``[t, sin(π 2^k t), cos(π 2^k t)]`` for k = 0 … 7 with t = snr_db/20
    (so the usual −20 … 20 dB span maps to t ∈ [−1, 1] and the lowest frequency does not
    wrap there), giving smooth yet distinguishable codes for nearby SNRs.

    :param dim: output width.

    ``forward(snr_db)``: a number, a 0-d tensor or float [B] (dB) → float [B, dim] (B = 1 for a scalar).
    """

    frequencies = 8

    def __init__(self, dim: int):
        super().__init__()
        if not _is_int(dim, 1):
            raise ConfigError("emb_dim", dim, "an integer ≥ 1")
        self.dim = dim
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(self.frequencies, dtype=torch.float32),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(1 + 2 * self.frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, snr_db) -> torch.Tensor:
        dtype = self.mlp[0].weight.dtype
        t = torch.as_tensor(snr_db, dtype=dtype, device=self.freqs.device).reshape(-1, 1) / 20.0
        angles = t * self.freqs.to(dtype)
        return self.mlp(torch.cat([t, angles.sin(), angles.cos()], dim=1))


class CondBlock(nn.Module):
    """Residual block ``x + conv3×3(act(FiLM(conv3×3(x), e)))``.

    FiLM (SING eqs. 14–15): ``h · (1 + scale(e)) + shift(e)`` channel-wise, with scale and
    shift one linear map of the SNR embedding e; the ``1 +`` keeps the block a plain residual
    block when the modulation is small. With ``emb_dim=None`` (CommIN) there is no
    modulation and e is ignored.

    :param channels: input = output channels.
    :param emb_dim: width of e, or None.

    ``forward(x, e)``: x float [B, channels, h, w], e float [B, emb_dim] or None → same shape as x.
    """

    def __init__(self, channels: int, emb_dim: Optional[int] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        self.film = nn.Linear(emb_dim, 2 * channels) if emb_dim is not None else None

    def forward(self, x: torch.Tensor, e: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(x)
        if self.film is not None:
            if e is None:
                raise ConfigError("snr_db", None, "an SNR in dB (this block is conditional)")
            scale, shift = self.film(e).chunk(2, dim=1)
            h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return x + self.conv2(self.act(h))


class LiftingNet(nn.Module):
    """A P or U network: conv3×3 (cin → width) → J CondBlocks → conv3×3 (width → cout).

    ``out`` (the last convolution) is zero-initialized by :class:`ConditionalINN`, so a fresh
    lifting step is the identity.

    ``forward(x, e)``: x float [B, cin, h, w], e float [B, emb_dim] or None → float [B, cout, h, w].
    """

    def __init__(self, cin: int, cout: int, width: int, blocks: int, emb_dim: Optional[int]):
        super().__init__()
        self.inp = nn.Conv2d(cin, width, 3, padding=1)
        self.blocks = nn.ModuleList(CondBlock(width, emb_dim) for _ in range(blocks))
        self.out = nn.Conv2d(width, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, e: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


class LiftingPair(nn.Module):
    """One (P, U) pair of a level: P maps the coarse part to the details, U the reverse."""

    def __init__(self, channels: int, width: int, blocks: int, emb_dim: Optional[int]):
        super().__init__()
        self.P = LiftingNet(channels, 3 * channels, width, blocks, emb_dim)
        self.U = LiftingNet(3 * channels, channels, width, blocks, emb_dim)


# ------------------------------------------------------------------------------------ the INN


@dataclass(frozen=True)
class ConditionalINNConfig:
    """Architecture of a :class:`ConditionalINN` (serializable with ``to_dict``/``from_dict``).

    :ivar channels: C, image channels.
    :ivar levels: L, Haar levels; the coarse part is 2**L times smaller per side (A = avgpool(2**L)).
    :ivar pairs: (P, U) lifting pairs per level.
    :ivar width: hidden channels of every P and U.
    :ivar blocks: J, CondBlocks per P and per U.
    :ivar conditional: FiLM conditioning on the SNR (SING-INN); False = CommIN.
    :ivar emb_dim: width of the SNR embedding (unused when not conditional).
    :ivar snr_range_db: the SNR range (dB) trained on; a warning is raised outside it.
    """

    channels: int = 3
    levels: int = 2
    pairs: int = 4
    width: int = 32
    blocks: int = 2
    conditional: bool = True
    emb_dim: int = 64
    snr_range_db: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self):
        if not _is_int(self.channels, 1):
            raise ConfigError("channels", self.channels, "an integer ≥ 1")
        _check_levels(self.levels)
        if not _is_int(self.pairs, 1):
            raise ConfigError("pairs", self.pairs, "an integer ≥ 1")
        if not _is_int(self.width, 1):
            raise ConfigError("width", self.width, "an integer ≥ 1")
        if not _is_int(self.blocks, 0):
            raise ConfigError("blocks", self.blocks, "an integer ≥ 0")
        if not isinstance(self.conditional, bool):
            raise ConfigError("conditional", self.conditional, "true or false")
        if not _is_int(self.emb_dim, 1):
            raise ConfigError("emb_dim", self.emb_dim, "an integer ≥ 1")
        r = self.snr_range_db
        ok = isinstance(r, (list, tuple)) and len(r) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r)
        if not ok or not r[0] <= r[1]:
            raise ConfigError("snr_range_db", r, "[low, high] in dB with low ≤ high")
        object.__setattr__(self, "snr_range_db", (float(r[0]), float(r[1])))

    @property
    def scale(self) -> int:
        """s = 2**levels, the side ratio between the image and its coarse part."""
        return 2 ** self.levels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["snr_range_db"] = list(self.snr_range_db)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ConditionalINNConfig":
        d = checked_fields(d, cls)
        if isinstance(d.get("snr_range_db"), list):
            d["snr_range_db"] = tuple(d["snr_range_db"])
        return cls(**d)


class ConditionalINN(nn.Module):
    """SING-INN (or CommIN when ``config.conditional`` is False); see the module docstring.

    :param config: :class:`ConditionalINNConfig` (default: its defaults).

    * ``forward(x, snr_db)``: x float [B, C, H, W] (H, W multiples of s = 2**levels), snr_db in
      dB (a number, a 0-d tensor or float [B]; may be None when not conditional) →
      ``(coarse [B, C, H/s, W/s], details)``, ``details[i]`` float [B, 3C, H/2**(i+1), W/2**(i+1)],
      finest level first.
    * ``inverse(coarse, details, snr_db)`` → x float [B, C, H, W]; exact inverse of ``forward``
      (same snr_db) up to float rounding, for any weights.
    * ``coarse(x, snr_db)`` → the coarse part alone (what SING eq. 16 compares with avgpool(x̂)).

    A fresh model equals :class:`HaarSplit`: its coarse part is ``avg_pool2d(x, s)``.
    An SNR outside ``config.snr_range_db`` gives one ``UserWarning`` per call (conditional
    models only: CommIN ignores the SNR).

    >>> inn = ConditionalINN(ConditionalINNConfig(width=8, blocks=1, pairs=1))
    >>> c, d = inn(torch.rand(2, 3, 16, 16), 0.0)
    >>> tuple(c.shape), [tuple(t.shape) for t in d]
    ((2, 3, 4, 4), [(2, 9, 8, 8), (2, 9, 4, 4)])
    """

    def __init__(self, config: Optional[ConditionalINNConfig] = None):
        super().__init__()
        config = ConditionalINNConfig() if config is None else config
        if not isinstance(config, ConditionalINNConfig):
            raise ConfigError("config", type(config).__name__, "a ConditionalINNConfig")
        self.config = cfg = config
        emb = cfg.emb_dim if cfg.conditional else None
        self.embedding = SNREmbedding(cfg.emb_dim) if cfg.conditional else None
        # lifting[ℓ][k]: the k-th (P, U) pair of level ℓ (ℓ = 0 is the finest level).
        self.lifting = nn.ModuleList(
            nn.ModuleList(LiftingPair(cfg.channels, cfg.width, cfg.blocks, emb) for _ in range(cfg.pairs))
            for _ in range(cfg.levels))
        for level in self.lifting:
            for pair in level:
                for net in (pair.P, pair.U):
                    # Zero output ⇒ every lifting step starts as the identity ⇒ the INN starts as Haar.
                    nn.init.zeros_(net.out.weight)
                    nn.init.zeros_(net.out.bias)

    # -- conditioning

    def _embed(self, snr_db: SNR, batch: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        """Validate snr_db, warn outside the trained range, return e [B, emb_dim] (None for CommIN)."""
        if not self.config.conditional:
            return None
        if snr_db is None:
            raise ConfigError("snr_db", None, "an SNR in dB (a number or a [B] tensor): this INN is conditional")
        try:
            vals = torch.as_tensor(snr_db, dtype=torch.float64).detach().cpu().reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError("snr_db", snr_db, "an SNR in dB (a number or a [B] tensor)") from None
        if vals.numel() not in (1, batch) or not bool(torch.isfinite(vals).all()):
            raise ConfigError("snr_db", vals.tolist(), f"a finite number or {batch} finite numbers (one per image)")
        lo, hi = self.config.snr_range_db
        outside = (vals < lo - 1e-9) | (vals > hi + 1e-9)
        if bool(outside.any()):
            warnings.warn(f"ConditionalINN: SNR {vals[outside].tolist()} dB outside the trained range "
                          f"[{lo}, {hi}] dB; the network extrapolates there", UserWarning, stacklevel=3)
        e = self.embedding(torch.as_tensor(snr_db).to(device=like.device).reshape(-1))
        return e.expand(batch, -1).to(like.dtype) if e.shape[0] == 1 else e.to(like.dtype)

    # -- the map and its inverse

    def forward(self, x: torch.Tensor, snr_db: SNR = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        _check_image(x, self.config.levels, self.config.channels)
        e = self._embed(snr_db, x.shape[0], x)
        c, details = x, []
        for level in self.lifting:
            c, d = _haar_forward(c)
            for pair in level:
                d = d - pair.P(c, e)
                c = c + pair.U(d, e)
            details.append(d)
        return c, details

    def inverse(self, coarse: torch.Tensor, details: Sequence[torch.Tensor], snr_db: SNR = None) -> torch.Tensor:
        _check_details(coarse, details, self.config.levels, self.config.channels)
        e = self._embed(snr_db, coarse.shape[0], coarse)
        c = coarse
        for level, d in zip(reversed(self.lifting), reversed(details)):
            for pair in reversed(level):
                c = c - pair.U(d, e)
                d = d + pair.P(c, e)
            c = _haar_inverse(c, d)
        return c

    def coarse(self, x: torch.Tensor, snr_db: SNR = None) -> torch.Tensor:
        """The coarse part [B, C, H/s, W/s] of x (trained to match ``avg_pool2d(x̂, s)``)."""
        return self.forward(x, snr_db)[0]

    # -- the artifact folder

    def save_pretrained(self, folder, card: Optional[str] = None, extra: Optional[dict] = None):
        """Write ``model.safetensors`` + ``config.json`` (kind ``inn``) into ``folder`` (atomically;
        an existing ``MODEL_CARD.md`` stays unless ``card`` replaces it); ``extra``: more
        top-level ``config.json`` entries. :returns: the folder, loadable with :meth:`from_pretrained`."""
        from linksim import zoo

        return zoo.save_checkpoint(self, folder, "inn", self.config.to_dict(), card=card, extra=extra)

    @classmethod
    def from_pretrained(cls, name_or_folder, device="cpu") -> "ConditionalINN":
        """A saved INN (checkpoint name or folder of kind ``inn``): eval mode, frozen, with ``.name``
        and ``.meta`` (:func:`linksim.zoo.load_inn`)."""
        from linksim import zoo

        return zoo.load_inn(name_or_folder, device=device)
