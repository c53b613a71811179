"""The OFDM receiver's channel estimation and equalization, glued from Sionna blocks.

- ``perfect``: the true frequency response of the discrete-time channel at the start of each
  OFDM symbol (Sionna's ``time_to_ofdm_channel``), error variance 0.
- ``ls``: :class:`~sionna.phy.ofdm.LSChannelEstimator` — y/p at the pilots (error variance
  σ²/|p|²), interpolated (nearest, linear, linear + time averaging) over the grid.
- ``lmmse``: :class:`~sionna.phy.ofdm.LMMSEChannelEstimator`, filtering in frequency then
  time with the TDL profile's covariances (``tdl_freq_cov_mat``, ``tdl_time_cov_mat``): the
  receiver knows the channel's statistics (model, delay spread, Doppler), not its realization.
  For a CDL profile: the frequency covariance from its power-delay profile, the time covariance
  estimated from 2,000 fixed-seed draws of the CDL (``cdl_freq_cov_mat``, ``cdl_time_cov_mat``
  in :mod:`linksim.channel.cdl`).
- equalizers: :class:`~sionna.phy.ofdm.ZFEqualizer` or :class:`~sionna.phy.ofdm.LMMSEEqualizer`;
  both take the estimation error variance into account and return the symbol estimates and
  the post-equalization noise(-plus-estimation-error) variance per data RE.
"""

from __future__ import annotations

import numpy as np
import torch
from sionna.phy.channel import time_to_ofdm_channel
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import (LMMSEChannelEstimator, LMMSEEqualizer, LSChannelEstimator, RemoveNulledSubcarriers,
                             ZFEqualizer, tdl_freq_cov_mat, tdl_time_cov_mat)

from linksim.channel.cdl import CDL_MODELS, GeneratorCDL, cdl_freq_cov_mat, cdl_time_cov_mat
from linksim.channel.ofdm_config import OFDMConfig

__all__ = ["OFDMReceiver"]


class OFDMReceiver:
    """Estimate the channel and equalize one batch of received resource grids.

    :param config: the link's :class:`~linksim.channel.ofdm_config.OFDMConfig`.
    :param rg: its Sionna resource grid; ``l_min``: the first lag of the discrete-time channel.
    :input y: complex [G, 1, 1, S, N], received grids after CP removal and FFT.
    :input h_time: complex [G, 1, 1, 1, 1, T, l_tot], the true discrete-time channel (perfect CSI).
    :input no: float [G], noise variance σ² per RE.
    :output: (h_hat complex [G, 1, 1, 1, 1, S, N_eff], err_var float like h_hat (or 0),
        x_hat complex [G, 1, 1, data REs], no_eff float [G, 1, 1, data REs]).
    """

    def __init__(self, config: OFDMConfig, rg, l_min: int, precision: str = "single", device: str = "cpu"):
        self.config, self.rg, self.l_min = config, rg, l_min
        kw = dict(precision=precision, device=device)
        sm = StreamManagement(np.ones((1, 1), dtype=int), 1)
        self.remove_nulls = RemoveNulledSubcarriers(rg, **kw)
        if config.csi == "ls":
            self.estimator = LSChannelEstimator(rg, interpolation_type=config.interpolation, **kw)
        elif config.csi == "lmmse":
            self.estimator = LMMSEChannelEstimator(rg, *self.covariances(precision, device), order="f-t", **kw)
        else:
            self.estimator = None
        self.equalizer = (ZFEqualizer if config.equalizer == "zf" else LMMSEEqualizer)(rg, sm, **kw)

    def covariances(self, precision: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(time covariance [S, S], frequency covariance [N_eff, N_eff]) of the channel model."""
        c, n = self.config, self.config.effective_subcarriers
        cdtype = torch.complex128 if precision == "double" else torch.complex64
        if c.model == "flat":
            return (torch.ones(c.num_ofdm_symbols, c.num_ofdm_symbols, dtype=cdtype, device=device),
                    torch.ones(n, n, dtype=cdtype, device=device))
        duration = (c.fft_size + c.cp_length) / c.bandwidth_hz
        if c.model in CDL_MODELS:
            cdl = GeneratorCDL(CDL_MODELS[c.model], c.delay_spread_ns * 1e-9, c.carrier_ghz * 1e9, c.speed_kmh / 3.6,
                               precision="double", device="cpu")
            return (cdl_time_cov_mat(cdl, duration, c.num_ofdm_symbols).to(cdtype).to(device),
                    cdl_freq_cov_mat(cdl, c.subcarrier_spacing_hz, n).to(cdtype).to(device))
        letter = c.model[-1].upper()
        freq = tdl_freq_cov_mat(letter, c.subcarrier_spacing_hz, n, c.delay_spread_ns * 1e-9,
                                precision=precision, device=device)
        time = tdl_time_cov_mat(letter, c.speed_kmh / 3.6, c.carrier_ghz * 1e9, duration, c.num_ofdm_symbols,
                                precision=precision, device=device)
        return time, freq

    def true_response(self, h_time: torch.Tensor) -> torch.Tensor:
        """The channel's frequency response on the effective subcarriers, [G, 1, 1, 1, 1, S, N_eff]."""
        return self.remove_nulls(time_to_ofdm_channel(h_time, self.rg, self.l_min))

    def __call__(self, y: torch.Tensor, h_time: torch.Tensor, no: torch.Tensor):
        if self.estimator is None:
            h_hat, err_var = self.true_response(h_time), torch.zeros((), dtype=no.dtype, device=no.device)
        else:
            h_hat, err_var = self.estimator(y, no)
        x_hat, no_eff = self.equalizer(y, h_hat, err_var, no)
        return h_hat, err_var, x_hat, no_eff
