"""Multipath channels for the OFDM link: 3GPP TDL and CDL profiles (Sionna) and a unit flat
channel, as discrete-time taps drawn from the caller's generator.

Sionna's :class:`~sionna.phy.channel.tr38901.TDL` draws its Doppler shifts and sum-of-sinusoid
phases with ``generator=self.torch_rng``, a property returning Sionna's global per-device RNG.
:class:`GeneratorTDL` overrides that property for the duration of one call
(:class:`~linksim.channel.call_generator.DrawsFromCallGenerator`, as for AWGN), so every tap
is a deterministic function of the caller's ``torch.Generator``; the CDL profiles do the same
through :class:`~linksim.channel.cdl.GeneratorCDL`.
"""

from __future__ import annotations

from typing import Optional

import torch
from sionna.phy.channel import cir_to_time_channel, time_lag_discrete_time_channel
from sionna.phy.channel.tr38901 import TDL

from linksim.channel.call_generator import DrawsFromCallGenerator
from linksim.channel.cdl import CDL_MODELS, GeneratorCDL
from linksim.channel.ofdm_config import OFDMConfig

__all__ = ["GeneratorTDL", "MultipathTaps"]


class GeneratorTDL(DrawsFromCallGenerator, TDL):
    """Sionna's TDL (SISO) whose random draws come from a given ``torch.Generator``.

    :input batch_size, num_time_steps, sampling_frequency: as :class:`~sionna.phy.channel.tr38901.TDL`.
    :input generator: ``torch.Generator`` on the block's device, or ``None`` (Sionna's config RNG).
    :output a: complex [batch, 1, 1, 1, 1, paths, num_time_steps], path coefficients (E Σ|a|² = 1).
    :output tau: float [batch, 1, 1, paths], path delays (s).
    """

    def draw(self, batch_size: int, num_time_steps: int, sampling_frequency: float,
             generator: Optional[torch.Generator]):
        with self.drawing_from(generator):
            return self(batch_size, num_time_steps, sampling_frequency)


class MultipathTaps:
    r"""The discrete-time channel :math:`\bar h_{b,\ell}`, :math:`\ell = L_{\min} … L_{\max}`, of each grid.

    For a TDL or CDL model the continuous paths (Sionna's TDL or CDL, sampled at every time
    sample so the Doppler evolves inside the slot) become taps by Sionna's
    ``cir_to_time_channel`` (sinc pulse shaping at the rate N·Δf), with Sionna's lags
    ``time_lag_discrete_time_channel``: :math:`L_{\min} = -6`, :math:`L_{\max} = \lceil \tau_{\max} N Δf\rceil + 6`. Taps are not
    renormalized per grid, so each subcarrier's gain is complex Gaussian (Rician for the LoS
    profiles TDL-D/E, CDL-D/E) with E|H|² ≈ 1 (the
    profile's powers sum to one; the sinc truncation loses well under 1 %); :math:`τ_{\max}` is
    the profile's longest delay (CDL-A at 100 ns: 0.97 µs). ``flat``: one tap,
    h = 1 (the unit channel).

    :param config: the :class:`~linksim.channel.ofdm_config.OFDMConfig`.
    :ivar paths: the path model drawing the continuous paths (:class:`GeneratorTDL`,
        :class:`~linksim.channel.cdl.GeneratorCDL`), ``None`` for ``flat``.
    :input batch: grids to draw; ``num_time_samples``: samples per grid; ``generator``.
    :output: complex [batch, 1, 1, 1, 1, num_time_samples + l_tot − 1, l_tot] (Sionna's layout).
    """

    def __init__(self, config: OFDMConfig, precision: str = "single", device: str = "cpu"):
        self.config, self.precision, self.device = config, precision, device
        if config.model == "flat":
            self.l_min, self.l_max, self.paths = 0, 0, None
            return
        speed = config.speed_kmh / 3.6
        if config.model in CDL_MODELS:
            self.paths = GeneratorCDL(CDL_MODELS[config.model], delay_spread=config.delay_spread_ns * 1e-9,
                                      carrier_frequency=config.carrier_ghz * 1e9, speed=speed,
                                      precision=precision, device=device)
            max_delay = self.paths.max_delay
        else:
            self.paths = GeneratorTDL(config.model[-1].upper(), delay_spread=config.delay_spread_ns * 1e-9,
                                      carrier_frequency=config.carrier_ghz * 1e9, min_speed=speed,
                                      max_speed=speed, precision=precision, device=device)
            max_delay = float(self.paths.delays.max())
        self.l_min, self.l_max = time_lag_discrete_time_channel(config.bandwidth_hz, max_delay)

    @property
    def l_tot(self) -> int:
        """Taps of the discrete-time channel; no ISI when ``cp_length ≥ l_tot − 1``."""
        return self.l_max - self.l_min + 1

    @property
    def isi_free_cp(self) -> int:
        """The shortest cyclic prefix (samples) free of inter-symbol interference, ``l_tot − 1``."""
        return self.l_tot - 1

    def draw(self, batch: int, num_time_samples: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        n = num_time_samples + self.l_tot - 1
        if self.paths is None:
            dtype = torch.complex128 if self.precision == "double" else torch.complex64
            return torch.ones(batch, 1, 1, 1, 1, n, 1, dtype=dtype, device=self.device)
        a, tau = self.paths.draw(batch, n, self.config.bandwidth_hz, generator)
        return cir_to_time_channel(self.config.bandwidth_hz, a, tau, self.l_min, self.l_max, normalize=False)
