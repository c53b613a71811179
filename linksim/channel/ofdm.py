r"""OFDM over a multipath channel with Doppler and estimated CSI, as a linksim channel.

    z [B, k] ─► data REs of ⌈k/D⌉ resource grids (+ pilots) ─► IFFT + CP ─► TDL taps (Doppler
    inside the slot) ─► + w ~ CN(0, σ²) per sample ─► CP removal + FFT ─► channel estimate
    (perfect | LS | LMMSE) ─► equalizer (ZF | LMMSE) ─► (ẑ, σ²_eff) per data RE

Every block is Sionna's (ResourceGridMapper, OFDMModulator/Demodulator, TDL,
ApplyTimeChannel, the estimators and equalizers); this module is the glue. The simulation runs
in the time domain, so a cyclic prefix shorter than the discrete-time channel produces the
inter-symbol interference it would on air, and the Doppler within a slot the inter-carrier
interference. Each resource grid (slot) sees an independent channel draw: the slots of one
image are assumed spread over time/frequency further apart than the coherence time/bandwidth
(as a scheduler hopping over the band would).

**SNR.** Per data RE, as everywhere in linksim: E|z|² = 1 per RE, σ² = 10^(−SNR/10) per RE.
The IFFT/FFT are unitary, so noise of variance σ² per time sample is σ² per RE.

**What the schemes see.** The receiver's output per data RE is ẑ = z + e with the reported
post-equalization variance σ²_eff = E|e|² (noise, estimation error; Sionna's equalizers). The
channel returns it as the equivalent scalar channel of :class:`~linksim.channel.ChannelOutput`:

.. math::  y' = h' ẑ,\quad h' = \sqrt{σ^2/σ^2_{\mathrm{eff}}},\quad \text{noise\_var} = σ^2,

so the schemes' own receivers work unchanged and exactly: zero forcing gives back (ẑ, σ²_eff)
(the demapper is fed the post-equalization variance per RE), the MMSE step of DeepJSCC gives
ẑ/(1 + σ²_eff), and DeepJSCC's effective-SNR input, SNR + 10 log10 mean|h'|², is the estimated
post-equalization SINR (the mean over the image's REs of 1/σ²_eff).

Randomness: the taps of every grid are drawn first, then the noise, all from ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from sionna.phy.channel import ApplyTimeChannel
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import OFDMDemodulator, OFDMModulator, ResourceGridMapper

from linksim.channel.base import Channel, ChannelOutput, _precision
from linksim.channel.multipath import MultipathTaps
from linksim.channel.ofdm_config import OFDMConfig
from linksim.channel.ofdm_receiver import OFDMReceiver
from linksim.units import noise_variance

__all__ = ["OFDMChannel", "OFDMTransmission"]


def _precision_of(t: torch.Tensor) -> str:
    return "double" if t.dtype in (torch.complex128, torch.float64) else "single"


@dataclass
class OFDMTransmission:
    """Everything one :meth:`OFDMChannel.transmit` call produced (G = B·grids per image).

    :ivar x_hat: complex [B, k], equalized symbols per data RE.
    :ivar no_eff: float [B, k], post-equalization noise variance per data RE.
    :ivar noise_var: float [B], σ² per RE.
    :ivar grid: complex [G, 1, 1, S, N], the transmitted resource grids (data and pilots).
    :ivar y: complex [G, 1, 1, S, N], the received grids after CP removal and FFT.
    :ivar h_true: complex [G, 1, 1, 1, 1, S, N_eff], true frequency response per symbol start.
    :ivar h_hat: like ``h_true``, the receiver's estimate (equal to it with perfect CSI).
    :ivar err_var: float, broadcastable to ``h_hat``: the estimator's error variance.
    """

    x_hat: torch.Tensor
    no_eff: torch.Tensor
    noise_var: torch.Tensor
    grid: torch.Tensor
    y: torch.Tensor
    h_true: torch.Tensor
    h_hat: torch.Tensor
    err_var: torch.Tensor


class _Blocks:
    """The Sionna blocks of one (device, precision)."""

    def __init__(self, config: OFDMConfig, precision: str, device: str):
        self.rg = config.resource_grid(precision, device)
        self.taps = MultipathTaps(config, precision, device)
        kw = dict(precision=precision, device=device)
        self.mapper = ResourceGridMapper(self.rg, **kw)
        self.modulator = OFDMModulator(config.cp_length, **kw)
        self.demodulator = OFDMDemodulator(config.fft_size, self.taps.l_min, config.cp_length, **kw)
        self.apply = ApplyTimeChannel(self.rg.num_time_samples, self.taps.l_tot, **kw)
        self.receiver = OFDMReceiver(config, self.rg, self.taps.l_min, **kw)


class OFDMChannel(Channel):
    """OFDM over a TDL (or flat) channel with perfect, LS or LMMSE CSI (module docstring).

    :param config: an :class:`~linksim.channel.ofdm_config.OFDMConfig` (or its spec dict).
    :input x: complex64 [B, k], power-normalized symbols, one per data RE.
    :input snr_db: float or [B], SNR per data RE (dB).
    :input generator: ``torch.Generator`` on ``x.device`` or None.
    :output: :class:`~linksim.channel.ChannelOutput` of the equivalent scalar channel:
        ``y`` = h'·ẑ, ``h`` = h' (real, ≥ 0, as complex) [B, k], ``noise_var`` σ² [B].

    .. code-block:: python

        ch = OFDMChannel(OFDMConfig(model="tdl-a", csi="ls"))
        out = ch(z, 10.0, torch.Generator().manual_seed(0))
        z_hat, noise_var_eff = equalize(out)        # ẑ and σ²_eff per data RE
    """

    def __init__(self, config: Union[OFDMConfig, dict] = None) -> None:
        super().__init__()
        self.config = config if isinstance(config, OFDMConfig) else OFDMConfig.from_spec(config or {})
        self.name = f"ofdm-{self.config.model}"
        self._blocks: dict[tuple[str, str], _Blocks] = {}

    def blocks(self, precision: str = "single", device: str = "cpu") -> _Blocks:
        key = (str(device), precision)
        if key not in self._blocks:
            self._blocks[key] = _Blocks(self.config, precision, str(device))
        return self._blocks[key]

    def to_spec(self) -> dict:
        return self.config.to_spec()

    def result_columns(self, k: int) -> dict:
        """The overhead columns of an image sent in k data REs (:meth:`OFDMConfig.overhead`) and the CSI mode."""
        return {"csi": self.config.csi, **self.config.overhead(k)}

    def transmit(self, x: torch.Tensor, snr_db, generator: Optional[torch.Generator] = None) -> OFDMTransmission:
        """Run the whole OFDM link on ``x`` [B, k]; see :class:`OFDMTransmission`."""
        x = self._check_x(x)
        snr = self._check_snr(snr_db, x)
        self._check_generator(generator, x)
        noise_var = noise_variance(snr)
        blocks = self.blocks(_precision(x), x.device)
        b, k = x.shape
        d = self.config.data_res_per_grid
        g = math.ceil(k / d)
        padded = torch.nn.functional.pad(x, (0, g * d - k)).reshape(b * g, 1, 1, d)
        grid = blocks.mapper(padded)                                   # [G, 1, 1, S, N]
        x_time = blocks.modulator(grid)                                # [G, 1, 1, T]
        h_time = blocks.taps.draw(b * g, x_time.shape[-1], generator)  # taps first, then noise
        y_time = blocks.apply(x_time, h_time)                          # [G, 1, 1, T + l_tot − 1]
        no = noise_var.repeat_interleave(g).to(y_time.real.dtype)
        y_time = self._noise_block(x).add_noise(y_time, no, generator)
        y = blocks.demodulator(y_time)                                 # [G, 1, 1, S, N]
        h_hat, err_var, x_hat, no_eff = blocks.receiver(y, h_time, no)
        h_true = h_hat if self.config.csi == "perfect" else blocks.receiver.true_response(h_time)
        x_hat = x_hat.reshape(b, g * d)[:, :k]
        no_eff = no_eff.reshape(b, g * d)[:, :k].to(noise_var.dtype)
        return OFDMTransmission(x_hat=x_hat, no_eff=no_eff, noise_var=noise_var, grid=grid, y=y, h_true=h_true,
                                h_hat=h_hat, err_var=err_var)

    def forward(self, x: torch.Tensor, snr_db, generator: Optional[torch.Generator] = None) -> ChannelOutput:
        t = self.transmit(x, snr_db, generator)
        no_eff = t.no_eff.clamp_min(torch.finfo(t.no_eff.dtype).tiny)
        gain = torch.sqrt(t.noise_var.unsqueeze(-1) / no_eff)            # h' [B, k], real
        h = torch.complex(gain, torch.zeros_like(gain))
        return ChannelOutput(y=h * t.x_hat, h=h, noise_var=t.noise_var)

    def capacity_bits(self, x: torch.Tensor, snr_db, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Σ over the k data REs of log2(1 + |H_RE|²·SNR): the per-RE capacity of one channel
        realization (what the channel offers a receiver that knows it; independent of the CSI mode,
        whose estimated SINR is not a bound: at low SNR a noisy LS estimate over-states it).

        :input x: complex [B, k] (any power-normalized symbols: they set k and draw the realization).
        :output: float64 [B], bits.
        """
        t = self.transmit(x, snr_db, generator)
        h2 = self.data_re_gains(t.h_true, x.shape).abs().double().square()
        return torch.log2(1 + h2 / t.noise_var.double().unsqueeze(-1)).sum(dim=1)

    def data_re_gains(self, h: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """A frequency response [G, 1, 1, 1, 1, S, N_eff] at the data REs, in the order the
        resource-grid mapper fills them (OFDM symbol by symbol, skipping pilots): complex [B, k]."""
        b, k = shape
        data = self.blocks(_precision_of(h), h.device).rg.pilot_pattern.mask[0, 0].flatten() == 0
        flat = h.reshape(h.shape[0], -1)[:, data.to(h.device)]
        return flat.reshape(b, -1)[:, :k]

    def extra_repr(self) -> str:
        c = self.config
        return f"name={self.name!r}, csi={c.csi!r}, equalizer={c.equalizer!r}, fft_size={c.fft_size}, cp_length={c.cp_length}"
