"""DeepJSCC autoencoders: the Bourtsoulatze et al. (2019) CNN and its SNR-adaptive variant.

Both map an image to ``k`` complex channel symbols and back, with the channel inside the
forward pass (docs/ARCHITECTURE.md §1):

    x [B,3,H,W] ─ pad ─► encoder ─► c real channels [B,c,H'/2^d,W'/2^d] ─ pair ─► z ∈ ℂ^k ─ ‖z‖² = kP ─►
    channel (y = h·z + w) ─► LMMSE estimate ẑ ─► decoder ─► sigmoid ─ crop ─► x̂ [B,3,H,W]

* **Encoder**: ``d`` 5×5 stride-2 convolutions (``widths``), ``same_layers`` 5×5 stride-1
  convolutions, a 5×5 convolution to ``c`` = ``latent_channels`` real outputs; PReLU after
  each hidden layer, optional GDN before it. The decoder mirrors it with transposed
  convolutions and IGDN. ``BOURTSOULATZE`` is the paper's configuration (d = 2, widths 16
  and 32, two stride-1 layers).
* **SNR-adaptive** (``adaptive=True``): after every hidden layer an attention-feature (AF)
  module in the style of ADJSCC (Xu et al., 2021) rescales the channels by
  ``g(MLP([mean over H,W of the features, condition]))``. The encoder's condition is
  the average SNR (known to the transmitter by feedback); the decoder's is the average SNR
  and the *effective* SNR of the image after the fading, ``SNR·mean|h|²`` in dB (perfect
  CSI at the receiver; equal to the SNR on AWGN). One model then serves a whole SNR range.
  The gate ``g`` is ``2·sigmoid`` (``af_gate="2sigmoid"``, the default): it is ≈ 1 at
  initialization, so the ten AF modules start as identities. ADJSCC's plain ``sigmoid``
  (``af_gate="sigmoid"``, the checkpoints shipped before the field existed) starts at ≈ ½
  and halves the features after every hidden layer: the decoder's five halvings make its
  output respond ≈ 1/32 as much to the received symbols (nothing renormalizes them; the
  biases then dominate), and such models learn markedly slower (README, "The shipped
  checkpoints").

**Bandwidth.** ``k = (c/2)·⌈H/2^d⌉·⌈W/2^d⌉``: the real outputs pair into complex symbols
(first half of the channels = real parts, second half = imaginary parts), so ρ = k/(3HW)
= c/(6·4^d) exactly when 2^d divides H and W. **Any image size works**: the image is
padded at the bottom and right (edge replication) to the next multiple of 2^d, and the
decoder output is cropped back; the padding costs channel uses, and ``channel_uses(H, W)``
reports the exact k that was spent.

**Receiver.** The channel's perfect CSI gives the linear MMSE estimate
``ẑ = y·h*/(|h|² + σ²)`` (bounded in deep fades, unlike zero forcing). It is used in
training and evaluation alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from torch import nn

from linksim import units
from linksim.errors import ConfigError, checked_fields
from linksim.jscc.gdn import GDN

__all__ = ["DeepJSCCConfig", "DeepJSCC", "BOURTSOULATZE", "latent_channels_for", "mmse_estimate"]


@dataclass(frozen=True)
class DeepJSCCConfig:
    """Architecture of a DeepJSCC model (serialized as ``config.json`` beside the weights).

    :ivar latent_channels: c, real outputs of the encoder per latent position (even).
    :ivar widths: hidden widths of the stride-2 stages; d = len(widths) sets the 2^d downsampling.
    :ivar same_layers: stride-1 hidden layers after the last stage (width ``widths[-1]``).
    :ivar gdn: GDN/IGDN before each hidden PReLU.
    :ivar adaptive: AF modules conditioned on the SNR (and the fading gain at the decoder).
    :ivar power: average transmit power P per complex use (linksim's SNR is P/σ² with P = 1: keep 1
        unless you also rescale the SNR).
    :ivar channel: the channel the model was trained for (``awgn``, ``rayleigh-block`` or ``ofdm-tdl-a``); informative.
    :ivar snr_range_db: the SNR range it was trained on (a warning is raised outside it).
    :ivar kernel_size: side of every convolution kernel (odd).
    :ivar af_gate: the AF modules' gate, ``"2sigmoid"`` (identity at initialization) or ADJSCC's
        ``"sigmoid"``. A ``config.json`` written before this field existed means ``"sigmoid"``.
    :ivar linear_path: a frozen linear analog code (PCA of 2^d×2^d blocks, Lee–Petersen gains,
        LMMSE; :mod:`linksim.jscc.linear`) carries the image, and the CNNs add residuals to its
        transmitted symbols and to its reconstruction (the model starts as the linear code when
        :meth:`DeepJSCC.init_linear_path` has filled the basis and zeroed the residual outputs).
        Needs ``adaptive`` (the gains depend on the SNR). The decoder is told the encoder's
        per-image normalization factor s (one number, 16 bits of side information per image,
        as the linear scheme's ``variances: prior`` mode): without it the linear estimate is
        off by s, which varies by ±several dB between photographs.
    """

    latent_channels: int
    widths: tuple[int, ...] = (48, 64, 96, 128)
    same_layers: int = 1
    gdn: bool = True
    adaptive: bool = True
    power: float = 1.0
    channel: str = "awgn"
    snr_range_db: tuple[float, float] = (-5.0, 15.0)
    kernel_size: int = field(default=5)
    af_gate: str = "2sigmoid"
    linear_path: bool = False

    def __post_init__(self):
        c = self.latent_channels
        if isinstance(c, bool) or not isinstance(c, int) or c < 2 or c % 2:
            raise ConfigError("latent_channels", c, "an even integer ≥ 2 (real parts and imaginary parts)")
        if not self.widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise ConfigError("widths", self.widths, "a non-empty list of positive integers")
        if isinstance(self.same_layers, bool) or not isinstance(self.same_layers, int) or self.same_layers < 0:
            raise ConfigError("same_layers", self.same_layers, "an integer ≥ 0")
        if not (isinstance(self.power, (int, float)) and self.power > 0):
            raise ConfigError("power", self.power, "a positive average power")
        if self.channel not in ("awgn", "rayleigh-block", "ofdm-tdl-a"):
            raise ConfigError("channel", self.channel, "'awgn', 'rayleigh-block' or 'ofdm-tdl-a'")
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ConfigError("kernel_size", k, "an odd integer ≥ 1 (even kernels break the 2^d size arithmetic)")
        if self.af_gate not in AF_GATES:
            raise ConfigError("af_gate", self.af_gate, f"one of {list(AF_GATES)}")
        if not isinstance(self.linear_path, bool):
            raise ConfigError("linear_path", self.linear_path, "true or false")
        if self.linear_path and not self.adaptive:
            raise ConfigError("linear_path", self.linear_path, "false for a model without SNR input "
                                                               "(the linear path's gains depend on the SNR)")
        if self.linear_path and 3 * self.downsampling ** 2 < self.latent_channels:
            raise ConfigError("linear_path", self.linear_path, f"false when latent_channels ({self.latent_channels}) "
                                                               f"exceeds the {3 * self.downsampling ** 2} coefficients of a block")
        lo, hi = self.snr_range_db
        if not lo <= hi:
            raise ConfigError("snr_range_db", self.snr_range_db, "[low, high] with low ≤ high")
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "snr_range_db", (float(lo), float(hi)))

    @property
    def downsampling(self) -> int:
        """2^d, the spatial reduction of the encoder."""
        return 2 ** len(self.widths)

    def bcr(self) -> float:
        """ρ = c / (6·4^d), exact for images whose sides 2^d divides."""
        return self.latent_channels / (6 * self.downsampling ** 2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["snr_range_db"] = list(self.widths), list(self.snr_range_db)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DeepJSCCConfig":
        d = checked_fields(d, cls)
        if "latent_channels" not in d:
            raise ConfigError("config.latent_channels", None, "an even integer ≥ 2")
        return cls(**{**d, "widths": tuple(d.get("widths", cls.widths)),
                      "snr_range_db": tuple(d.get("snr_range_db", (-5.0, 15.0))),
                      "af_gate": d.get("af_gate", "sigmoid")})  # written before the field: ADJSCC's gate


#: Bourtsoulatze, Kurka, Gündüz (2019): 5×5 convs, 16 and 32 filters, stride 2 twice, PReLU.
BOURTSOULATZE = dict(widths=(16, 32), same_layers=2, gdn=False, adaptive=False)


def latent_channels_for(bcr: float, widths=DeepJSCCConfig.widths) -> int:
    """The c that gives ρ = ``bcr`` exactly: c = 6·4^d·ρ (must come out an even integer)."""
    c = 6 * (2 ** len(widths)) ** 2 * bcr
    if abs(c - round(c)) > 1e-9 or round(c) < 2 or round(c) % 2:
        raise ConfigError("bcr", bcr, f"a ratio for which 6·4^{len(widths)}·ρ is an even integer ≥ 2 "
                                      f"(e.g. 1/12, 1/48, 1/192, 1/768 with {len(widths)} stages)")
    return int(round(c))


def _two_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(logits)


#: AF gates: logits [B, C] → channel scales [B, C] (module-level functions, so models pickle).
AF_GATES = {
    "sigmoid": torch.sigmoid,   # ADJSCC; scales in (0, 1), ≈ ½ at init
    "2sigmoid": _two_sigmoid,   # scales in (0, 2), ≈ 1 at init
}


class AFModule(nn.Module):
    """Attention-feature module: channel-wise scale ``gate(MLP([GAP(f), cond]))`` (ADJSCC).

    :input f: [B, C, H, W] features; ``cond``: [B, cond_dim] (SNRs in dB / 10).
    :output: [B, C, H, W], ``f`` scaled per (batch element, channel).
    """

    def __init__(self, channels: int, cond_dim: int, gate: str = "2sigmoid"):
        super().__init__()
        hidden = max(channels // 4, 16)
        self.mlp = nn.Sequential(nn.Linear(channels + cond_dim, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.gate = AF_GATES[gate]

    def forward(self, f: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        context = torch.cat([f.mean(dim=(2, 3)), cond.to(f.dtype)], dim=1)
        return f * self.gate(self.mlp(context))[:, :, None, None]


class _Stage(nn.Module):
    """conv (or transposed conv) → [GDN] → PReLU → [AF]."""

    def __init__(self, cin, cout, stride, *, transposed, gdn, af_cond, kernel, af_gate):
        super().__init__()
        pad = kernel // 2
        if transposed:
            self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride, pad, output_padding=stride - 1)
        else:
            self.conv = nn.Conv2d(cin, cout, kernel, stride, pad)
        self.norm = GDN(cout, inverse=transposed) if gdn else nn.Identity()
        self.act = nn.PReLU(cout)
        self.af = AFModule(cout, af_cond, af_gate) if af_cond else None

    def forward(self, x, cond):
        x = self.act(self.norm(self.conv(x)))
        return x if self.af is None else self.af(x, cond)


def mmse_estimate(y: torch.Tensor, h: torch.Tensor, noise_var: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Linear MMSE estimate of symbols of average power P: ``y·h*·P/(P|h|² + σ²)``.

    :input y, h: complex [B, k]; ``noise_var``: float [B] (σ² per complex use).
    :output: complex [B, k].
    """
    h2 = h.real.square() + h.imag.square()
    return y * h.conj() * power / (power * h2 + noise_var.to(h2.dtype).unsqueeze(-1))


class DeepJSCC(nn.Module):
    """A DeepJSCC encoder/decoder pair (see the module docstring for the signal flow).

    :param config: :class:`DeepJSCCConfig`.

    ``forward(x, snr_db, channel, generator)`` runs the whole link: x float [B,3,H,W] in
    [0, 1], ``snr_db`` float or [B], ``channel`` a :class:`linksim.channel.Channel`,
    ``generator`` a ``torch.Generator`` on x's device → x̂ float [B,3,H,W] in [0, 1].
    Differentiable through the channel.

    >>> model = DeepJSCC(DeepJSCCConfig(latent_channels=32))
    >>> model.channel_uses(512, 768), model.config.bcr()   # ρ = 1/48
    (24576, 0.020833333333333332)
    """

    def __init__(self, config: DeepJSCCConfig):
        super().__init__()
        if not isinstance(config, DeepJSCCConfig):
            raise ConfigError("config", type(config).__name__, "a DeepJSCCConfig")
        self.config = cfg = config
        kw = dict(gdn=cfg.gdn, kernel=cfg.kernel_size, af_gate=cfg.af_gate)
        # decoder conditions: SNR, effective SNR (+ the normalization factor for a linear path)
        enc_cond, dec_cond = (1, 3 if cfg.linear_path else 2) if cfg.adaptive else (0, 0)
        w = cfg.widths
        enc = [_Stage(cin, cout, 2, transposed=False, af_cond=enc_cond, **kw) for cin, cout in zip((3,) + w[:-1], w)]
        enc += [_Stage(w[-1], w[-1], 1, transposed=False, af_cond=enc_cond, **kw) for _ in range(cfg.same_layers)]
        self.encoder = nn.ModuleList(enc)
        self.to_latent = nn.Conv2d(w[-1], cfg.latent_channels, cfg.kernel_size, 1, cfg.kernel_size // 2)
        dec = [_Stage(cfg.latent_channels, w[-1], 1, transposed=True, af_cond=dec_cond, **kw)]
        dec += [_Stage(w[-1], w[-1], 1, transposed=True, af_cond=dec_cond, **kw) for _ in range(cfg.same_layers)]
        dec += [_Stage(cin, cout, 2, transposed=True, af_cond=dec_cond, **kw)
                for cin, cout in zip(w[::-1][:-1], w[::-1][1:])]
        self.decoder = nn.ModuleList(dec)
        self.to_image = nn.ConvTranspose2d(w[0], 3, cfg.kernel_size, 2, cfg.kernel_size // 2, output_padding=1)
        if cfg.linear_path:  # filled by init_linear_path or by the checkpoint's weights; never trained
            s, c = cfg.downsampling, cfg.latent_channels
            self.register_buffer("linear_mean", torch.zeros(3, s, s))
            self.register_buffer("linear_components", torch.zeros(c, 3, s, s))
            self.register_buffer("linear_variances", torch.ones(c))

    # -- the linear path ----------------------------------------------------------
    @torch.no_grad()
    def init_linear_path(self, basis) -> None:
        """Start as the linear analog code: copy the ``c`` leading components of ``basis`` (a
        :class:`~linksim.jscc.linear.LinearBasis` of 2^d×2^d blocks) and zero the two residual
        outputs (``to_latent``, ``to_image``), so encoder and decoder add nothing at first."""
        if not self.config.linear_path:
            raise ConfigError("linear_path", False, "true in the model's config to initialize a linear path")
        s, c = self.config.downsampling, self.config.latent_channels
        if basis.block != s:
            raise ConfigError("basis", f"{basis.block}×{basis.block} blocks", f"{s}×{s} blocks (the model's 2^d)")
        self.linear_mean.copy_(basis.mean.reshape(3, s, s))
        self.linear_components.copy_(basis.components[:c].reshape(c, 3, s, s))
        self.linear_variances.copy_(basis.variances[:c])
        for layer in (self.to_latent, self.to_image):
            layer.weight.zero_()
            layer.bias.zero_()

    def _linear_gains(self, snr_db: torch.Tensor) -> torch.Tensor:
        """Lee–Petersen amplitudes g_j = √(p_j/λ_j) [B, c] at each SNR, c/2 complex uses per block."""
        from linksim.jscc.linear import lee_petersen_powers

        lam = self.linear_variances.double()
        noise = self.config.power * 10 ** (-snr_db.double() / 10) / 2
        p = lee_petersen_powers(lam.expand(len(snr_db), -1), noise, self.config.latent_channels / 2 * self.config.power)
        return torch.sqrt(p / lam.clamp_min(1e-30)).float()

    def _linear_coefficients(self, x_padded: torch.Tensor) -> torch.Tensor:
        """[B, 3, H', W'] in [0, 1] → PCA coefficients [B, c, H'/2^d, W'/2^d] (float32)."""
        s = self.config.downsampling
        mean = self.linear_mean.repeat(1, x_padded.shape[-2] // s, x_padded.shape[-1] // s)
        return nn.functional.conv2d(x_padded.float() - mean, self.linear_components, stride=s)

    def _linear_reconstruction(self, f: torch.Tensor, snr_db: torch.Tensor, snr_eff_db: torch.Tensor,
                               scale: torch.Tensor) -> torch.Tensor:
        """Received features [B, c, h, w] (ẑ after the channel's MMSE step) → LMMSE image [B, 3, H', W'].

        ``mmse_estimate`` returns ẑ = a·z + e with a = γ/(1+γ), γ the effective SNR, and e of
        variance a²P/γ per complex use; so ẑ/a is z plus noise n = P/(2γ) per real dimension,
        and coefficient j (sent with amplitude g_j) is estimated as g_j λ_j/(g_j² λ_j + n)·ẑ_j/a.
        The encoder multiplied every symbol by the image's normalization factor s (``scale``,
        [B] or a float), which the receiver is told: the estimate is divided by it.
        """
        s = self.config.downsampling
        gamma = 10 ** (snr_eff_db.float() / 10)
        a = gamma / (1 + gamma)
        n = self.config.power / (2 * gamma)
        g, lam = self._linear_gains(snr_db), self.linear_variances.float()
        weight = g * lam / (g.square() * lam + n[:, None]) / a[:, None] / scale.reshape(-1, 1)
        coefficients = f.float() * weight[:, :, None, None]
        image = nn.functional.conv_transpose2d(coefficients, self.linear_components, stride=s)
        return image + self.linear_mean.repeat(1, f.shape[-2], f.shape[-1])

    # -- bandwidth ------------------------------------------------------------
    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W'): the image size after padding to multiples of 2^d."""
        s = self.config.downsampling
        return -(-height // s) * s, -(-width // s) * s

    def channel_uses(self, height: int, width: int) -> int:
        """k = (c/2)·(H'/2^d)·(W'/2^d): complex symbols sent for one H×W image."""
        hp, wp = self.padded_size(height, width)
        s = self.config.downsampling
        return self.config.latent_channels // 2 * (hp // s) * (wp // s)

    # -- the two ends -----------------------------------------------------------
    def _conditions(self, snr_db, batch: int, device, snr_eff_db=None, scale=None):
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device).reshape(-1).expand(batch)
        eff = snr if snr_eff_db is None else torch.as_tensor(snr_eff_db, dtype=torch.float32, device=device).reshape(-1).expand(batch)
        # dB / 10 keeps the MLP inputs of order one over the usual −10…20 dB (the normalization
        # factor of a linear path, within ±30 dB, enters as dB / 20)
        dec = [snr, eff.clamp(-30, 50)]
        if scale is not None:
            dec.append(units.linear_to_db(torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(-1).expand(batch)).clamp(-30, 30) / 2)
        return snr[:, None] / 10, torch.stack(dec, dim=1) / 10

    def encode(self, x: torch.Tensor, snr_db=0.0, return_scale: bool = False):
        """Image → power-normalized symbols.

        :input x: float [B, 3, H, W] in [0, 1].
        :input snr_db: float or [B] (used by adaptive models only).
        :param return_scale: also return the normalization factor s [B] (z = s·z_raw), the one
            number per image a linear-path decoder is told (side information, 16 bits).
        :output: complex64 [B, k] with ‖z_b‖² = k·P for every b (and s, float32 [B]).
        """
        _check_image(x)
        hp, wp = self.padded_size(*x.shape[-2:])
        f = nn.functional.pad(x, (0, wp - x.shape[-1], 0, hp - x.shape[-2]), mode="replicate")
        f = f * 2 - 1  # centred input
        enc_cond, _ = self._conditions(snr_db, x.shape[0], x.device)
        x_padded = f
        for stage in self.encoder:
            f = stage(f, enc_cond)
        f = self.to_latent(f).float()
        if self.config.linear_path:
            with torch.autocast(x.device.type, enabled=False):  # the linear code in float32
                # the residual is added *after* the gains: at low SNR Lee–Petersen gives the weak
                # coefficients no power (g = 0), and a residual scaled by g could not use them either
                gains = self._linear_gains(enc_cond[:, 0] * 10)[:, :, None, None]
                f = self._linear_coefficients((x_padded + 1) / 2) * gains + f
        half = f.shape[1] // 2
        raw = torch.complex(f[:, :half].flatten(1), f[:, half:].flatten(1))
        z = units.normalize_power(raw, self.config.power)
        if not return_scale:
            return z
        return z, torch.sqrt(z.abs().square().sum(1) / raw.abs().square().sum(1).clamp_min(1e-30)).detach()

    def decode(self, z_hat: torch.Tensor, image_size: tuple[int, int], snr_db=0.0, snr_eff_db=None,
               scale=None) -> torch.Tensor:
        """Received symbol estimates → image.

        :input z_hat: complex [B, k] (k = ``channel_uses(*image_size)``).
        :input image_size: (H, W) of the original image.
        :input snr_db, snr_eff_db: float or [B]; the effective SNR defaults to ``snr_db``.
        :input scale: float or [B], the encoder's normalization factor (``encode(...,
            return_scale=True)``); required by linear-path models, ignored by the others.
        :output: float32 [B, 3, H, W] in [0, 1].
        """
        h, w = image_size
        k = self.channel_uses(h, w)
        if not z_hat.is_complex() or z_hat.dim() != 2 or z_hat.shape[1] != k:
            raise ConfigError("z_hat", tuple(z_hat.shape), f"complex [B, {k}] for a {h}×{w} image")
        hp, wp = self.padded_size(h, w)
        s, half = self.config.downsampling, self.config.latent_channels // 2
        f = torch.cat([z_hat.real, z_hat.imag], dim=1).reshape(z_hat.shape[0], 2 * half, hp // s, wp // s)
        if self.config.linear_path and scale is None:
            raise ConfigError("scale", None, "the encoder's normalization factor per image (encode(..., "
                                             "return_scale=True)): a linear-path decoder is told it")
        _, dec_cond = self._conditions(snr_db, z_hat.shape[0], z_hat.device, snr_eff_db,
                                       scale if self.config.linear_path else None)
        received = f
        for stage in self.decoder:
            f = stage(f, dec_cond)
        residual = self.to_image(f).float()
        if not self.config.linear_path:
            return torch.sigmoid(residual)[..., :h, :w]
        with torch.autocast(z_hat.device.type, enabled=False):
            linear = self._linear_reconstruction(received, dec_cond[:, 0] * 10, dec_cond[:, 1] * 10,
                                                 torch.as_tensor(scale, dtype=torch.float32, device=z_hat.device))
            return (linear + residual).clamp(0, 1)[..., :h, :w]

    def forward(self, x: torch.Tensor, snr_db, channel, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        z, scale = self.encode(x, snr_db, return_scale=True)
        out = channel(z, snr_db, generator)
        h2 = (out.h.real.square() + out.h.imag.square()).mean(dim=1)
        snr_eff = torch.as_tensor(snr_db, dtype=torch.float32, device=x.device) + units.linear_to_db(h2.float())
        return self.decode(mmse_estimate(out.y, out.h, out.noise_var, self.config.power), tuple(x.shape[-2:]), snr_db,
                           snr_eff, scale=scale)

    def warn_if_outside(self, snr_db) -> None:
        """Warn (once per call) when an SNR lies outside the trained range."""
        lo, hi = self.config.snr_range_db
        vals = torch.as_tensor(snr_db, dtype=torch.float64).reshape(-1)
        if bool(((vals < lo - 1e-9) | (vals > hi + 1e-9)).any()):
            import warnings

            warnings.warn(f"DeepJSCC: SNR {vals.tolist()} dB outside the trained range [{lo}, {hi}] dB; "
                          "the model extrapolates there", stacklevel=2)

    # -- the artifact folder --------------------------------------------------------
    def save_pretrained(self, folder, card: Optional[str] = None, extra: Optional[dict] = None):
        """Write ``model.safetensors`` + ``config.json`` (kind ``deepjscc``) into ``folder``
        (atomically; an existing ``MODEL_CARD.md`` stays unless ``card`` replaces it).

        :param extra: more top-level ``config.json`` entries (training settings, history).
        :returns: the folder (a ``pathlib.Path``), loadable with :meth:`from_pretrained`.
        """
        from linksim import zoo

        return zoo.save_checkpoint(self, folder, "deepjscc", self.config.to_dict(), card=card, extra=extra)

    @classmethod
    def from_pretrained(cls, name_or_folder, device="cpu") -> "DeepJSCC":
        """A saved model (a checkpoint name or folder of kind ``deepjscc``), in eval mode
        (:func:`linksim.zoo.load_deepjscc`)."""
        from linksim import zoo

        return zoo.load_deepjscc(name_or_folder, device=device)


def _check_image(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError("images", shape, "a float tensor [B, 3, H, W] in [0, 1]")
