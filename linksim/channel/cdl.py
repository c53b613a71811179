"""3GPP TR 38.901 clustered delay line (CDL-A … CDL-E) channels with single antennas, drawing
from the caller's generator, and the channel statistics an LMMSE estimator needs.

**Antennas.** Sionna's :class:`~sionna.phy.channel.tr38901.CDL` is a MIMO model; linksim's link
is SISO, so both ends get one single-polarized, vertically polarized element with Sionna's
``"omni"`` pattern (:class:`~sionna.phy.channel.tr38901.Antenna`, field F_θ = 1, F_φ = 0 in every
direction). With Sionna's default orientations (BS [0, 0, 0], UT [π, 0, 0]: rotations about the
vertical axis only) the vertical field stays vertical in the global frame, so each ray's field
term is e^{jΦ_θθ} of unit modulus: the cross-polarization ratio (XPR) plays no role and the
channel's average power is the profile's, Σ P_n = 1. No renormalization is applied (as for
the TDL channel): a directional pattern would change the average power with the cluster angles,
which is why the omni element is the SISO choice comparable with TDL.

**Link.** Downlink (Sionna's default): the BS transmits, the UT receives and moves with speed v
in a direction Sionna draws per realization (azimuth uniform in [0, 2π), zenith uniform in
[0, π)). The Doppler of each ray follows from its arrival direction. The direction is fixed:
with an omni antenna at each end the uplink (Sionna swaps the departure and arrival angles and
the UT transmits) has the same statistics. In the LoS profiles Sionna places the UT at distance
0, so the specular ray starts every realization with the same phase (E[H] ≠ 0 at t = 0); the
LMMSE estimator's covariances below are second moments, which include it.

**Randomness.** Sionna's CDL draws in three places: the UT velocity (``CDL._get_velocity``), the
random coupling of the ray angles within each cluster (``CDL._shuffle_angles``), both with
``generator=self.torch_rng``, and the initial phases of every ray (step 10,
``ChannelCoefficientsGenerator._step_10``, with *its own* ``self.torch_rng``). The CDL's
``torch_rng`` is overridden by :class:`~linksim.channel.call_generator.DrawsFromCallGenerator`;
the coefficient generator is a separate Sionna object, so :class:`GeneratorCDL` replaces it by
an identical one with the same mixin and routes the call's generator to both. Nothing else in
the CDL draws (the ray offsets of Eq. 7.7-0a are fixed; no NumPy or Python RNG is used).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import numpy as np
import torch
from sionna.phy.channel.tr38901 import CDL, Antenna
from sionna.phy.channel.tr38901.channel_coefficients import ChannelCoefficientsGenerator

from linksim.channel.call_generator import DrawsFromCallGenerator

__all__ = ["GeneratorCDL", "cdl_freq_cov_mat", "cdl_time_cov_mat", "CDL_MODELS"]

#: linksim's names of the CDL profiles, mapped to Sionna's letters
CDL_MODELS = {f"cdl-{x}": x.upper() for x in "abcde"}

#: complex samples (draws × clusters × rays × time steps) of one Sionna CDL call: larger batches
#: are drawn in consecutive chunks (Sionna materializes the per-ray Doppler of every time step)
_MAX_RAY_SAMPLES = 1 << 22


class _GeneratorCoefficients(DrawsFromCallGenerator, ChannelCoefficientsGenerator):
    """Sionna's coefficient generator (steps 10-11 of TR 38.901 §7.5) drawing its ray phases
    from the call's generator."""


class GeneratorCDL(DrawsFromCallGenerator, CDL):
    """Sionna's CDL with one omni, vertically polarized antenna at each end (SISO), downlink,
    whose random draws all come from a given ``torch.Generator`` (module docstring).

    :param model: Sionna's letter, ``"A"`` … ``"E"``.
    :param delay_spread: RMS delay spread, s (the profile's normalized delays are scaled by it).
    :param carrier_frequency: Hz.
    :param speed: UT speed, m/s (fixed; its direction is drawn per realization).
    :input batch_size, num_time_steps, sampling_frequency (Hz), generator: see :meth:`draw`.
    :output a: complex [batch, 1, 1, 1, 1, paths, num_time_steps], path coefficients
        (E Σ|a|² = 1); ``tau``: float [batch, 1, 1, paths], path delays (s), first at 0.
    """

    def __init__(self, model: str, delay_spread: float, carrier_frequency: float, speed: float,
                 precision: Optional[str] = None, device: Optional[str] = None):
        def antenna():
            return Antenna("single", "V", "omni", carrier_frequency, precision=precision, device=device)

        super().__init__(model, delay_spread, carrier_frequency, ut_array=antenna(), bs_array=antenna(),
                         direction="downlink", min_speed=speed, max_speed=speed, precision=precision,
                         device=device)
        # the parent built a coefficient generator drawing from Sionna's global RNG; this one is
        # the same object with its phases drawn from the call's generator
        self._cir_gen = _GeneratorCoefficients(carrier_frequency=carrier_frequency, tx_array=self._tx_array,
                                               rx_array=self._rx_array, subclustering=False,
                                               precision=precision, device=device)

    @contextmanager
    def drawing_from(self, generator: Optional[torch.Generator]):
        """Velocity, ray coupling and ray phases all from ``generator`` until the block exits."""
        with super().drawing_from(generator), self._cir_gen.drawing_from(generator):
            yield

    def draw(self, batch_size: int, num_time_steps: int, sampling_frequency: float,
             generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` independent realizations sampled at ``num_time_steps`` instants
        1/``sampling_frequency`` apart; drawn in chunks of at most ``_MAX_RAY_SAMPLES`` ray
        samples (a deterministic split: the same generator state gives the same channels)."""
        rays = self._num_clusters * self._rays_per_cluster * num_time_steps
        chunk = max(1, _MAX_RAY_SAMPLES // rays)
        a, tau = [], []
        with self.drawing_from(generator):
            for start in range(0, batch_size, chunk):
                a_i, tau_i = self(min(chunk, batch_size - start), num_time_steps, sampling_frequency)
                a.append(a_i)
                tau.append(tau_i)
        return torch.cat(a), torch.cat(tau)

    @property
    def max_delay(self) -> float:
        """The longest path delay, s (sets the discrete-time channel's length)."""
        return float(self._delays.max())

    def power_delay_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """(delays [P] in s, mean powers [P] summing to 1) of the paths Sionna outputs.

        For the LoS profiles (D, E) the specular ray shares the first path with the zero-delay
        cluster: Sionna scales the LoS ray by √(K/(K+1)) and the clusters by √(1/(K+1)), with
        K = P_LoS / Σ P_clusters, so path 0 carries (K + P_1)/(K + 1).
        """
        delays = self._delays.detach().double().cpu().numpy()
        k = float(self._k_factor)
        powers = self._powers.detach().double().cpu().numpy() / (k + 1)
        powers[0] += k / (k + 1)
        return delays, powers


def cdl_freq_cov_mat(cdl: GeneratorCDL, subcarrier_spacing: float, num_subcarriers: int) -> torch.Tensor:
    r"""Frequency covariance of the channel over ``num_subcarriers`` adjacent subcarriers,
    from the CDL's power-delay profile (as Sionna's ``tdl_freq_cov_mat`` for TDL):

    .. math:: R^{(f)}_{u,v} = \sum_p P_p\, e^{-j2\pi \tau_p Δf (u - v)}

    (the paths' coefficients are uncorrelated: independent ray phases).

    :output: complex128 [N, N] on the CPU, unit diagonal.
    """
    delays, powers = cdl.power_delay_profile()
    n = np.arange(num_subcarriers)
    phase = np.exp(-2j * np.pi * subcarrier_spacing * delays[:, None] * n[None, :])   # [P, N]
    cov = np.einsum("p,pu,pv->uv", powers, phase, phase.conj())
    return torch.from_numpy(cov)


def cdl_time_cov_mat(cdl: GeneratorCDL, ofdm_symbol_duration: float, num_ofdm_symbols: int,
                     draws: int = 2000, seed: int = 0) -> torch.Tensor:
    r"""Time covariance of the channel between the OFDM symbols of a slot, estimated from
    ``draws`` realizations of the CDL itself drawn from a generator seeded with ``seed``:

    .. math:: R^{(t)}_{s,s'} = \mathbb E\Big[\sum_p a_p(sT)\, a_p^*(s'T)\Big]

    Monte-Carlo rather than a closed form because the Doppler of each ray depends on its
    arrival angle and on the UT's direction of motion, which Sionna draws per realization (the
    TDL's Jakes model J₀(2π f_D Δt) does not apply). The estimate is scaled to unit mean
    diagonal, so R^{(t)} ⊗ R^{(f)} carries the model's unit power. A fixed seed makes the
    receiver's filter a deterministic function of the configuration, independent of the
    simulation's draws; 2,000 draws leave a standard error of about 1/√2000 ≈ 2 % per entry.

    :param cdl: the CDL whose statistics are wanted; pass one built on the CPU in double
        precision (as the receiver does) so the estimate is the same whatever device simulates.
    :output: complex [S, S] on ``cdl``'s device.
    """
    generator = torch.Generator(device=cdl.device).manual_seed(seed)
    a, _ = cdl.draw(draws, num_ofdm_symbols, 1.0 / ofdm_symbol_duration, generator)
    a = a[:, 0, 0, 0, 0]                                                   # [draws, P, S]
    cov = torch.einsum("bps,bpt->st", a, a.conj()) / draws
    return cov / cov.diagonal().real.mean()
