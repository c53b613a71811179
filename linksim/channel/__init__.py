"""Channels (built on Sionna PHY blocks): AWGN, Rayleigh block and fast fading (perfect CSI), and
OFDM over 3GPP TDL multipath with Doppler and perfect, LS or LMMSE CSI (:mod:`linksim.channel.ofdm`).

.. code-block:: python

    import torch
    from linksim.channel import make_channel, equalize
    from linksim.units import normalize_power

    ch = make_channel({"type": "rayleigh-block", "block_length": 64})
    z = normalize_power(torch.randn(4, 256, dtype=torch.complex64))
    out = ch(z, snr_db=10.0, generator=torch.Generator().manual_seed(0))
    x_hat, noise_var_eff = equalize(out)
"""

from __future__ import annotations

from typing import Union

from linksim.errors import ConfigError
from linksim.channel.base import Channel, ChannelOutput
from linksim.channel.awgn import AWGNChannel
from linksim.channel.rayleigh import RayleighBlockChannel, RayleighFastChannel
from linksim.channel.equalize import equalize
from linksim.channel.on_cpu import ChannelOnCPU
from linksim.channel.ofdm_config import OFDMConfig
from linksim.channel.ofdm import OFDMChannel, OFDMTransmission

__all__ = [
    "Channel",
    "ChannelOutput",
    "ChannelOnCPU",
    "AWGNChannel",
    "RayleighBlockChannel",
    "RayleighFastChannel",
    "equalize",
    "OFDMConfig",
    "OFDMChannel",
    "OFDMTransmission",
    "make_channel",
    "CHANNEL_TYPES",
    "OFDM_PRESETS",
]

CHANNEL_TYPES = ("awgn", "rayleigh-block", "rayleigh-fast", "ofdm")
#: named OFDM links (a name is what ``linksim train deepjscc --channel`` takes): the defaults of
#: :class:`OFDMConfig` — TDL-A 100 ns, 3 km/h, 30 kHz, LS CSI with linear interpolation
OFDM_PRESETS = {"ofdm-tdl-a": {"type": "ofdm", "model": "tdl-a", "csi": "ls"}}
_ALLOWED = ("'awgn' | 'rayleigh-block' | 'rayleigh-fast', or {'type': 'rayleigh-block', 'block_length': int}, "
            "or {'type': 'ofdm', 'model': 'tdl-a', ...}")


def make_channel(spec: Union[str, dict, Channel]) -> Channel:
    """Build a channel from a name or a dict spec.

    :param spec: ``"awgn"`` | ``"rayleigh-block"`` | ``"rayleigh-fast"``, or a dict
        with ``"type"`` and, for ``"rayleigh-block"`` only, an optional
        ``"block_length"`` (int ≥ 1 or None = one coefficient per image); ``"ofdm"`` takes the
        fields of :class:`OFDMConfig` (``model``, ``csi``, ``cp_length``, ...).
        A :class:`Channel` instance is returned unchanged.
    :output: a :class:`Channel`.
    :raises ConfigError: field ``"channel"`` for an unknown type or key,
        ``"block_length"`` for a bad block length.

    >>> make_channel("awgn").name
    'awgn'
    >>> make_channel({"type": "rayleigh-block", "block_length": 64}).block_length
    64
    """
    if isinstance(spec, Channel):
        return spec
    if isinstance(spec, str):
        spec = dict(OFDM_PRESETS[spec]) if spec in OFDM_PRESETS else {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError("channel", spec, _ALLOWED)
    kind = spec["type"]
    extra = set(spec) - {"type"}
    if kind == "awgn" and not extra:
        return AWGNChannel()
    if kind == "rayleigh-fast" and not extra:
        return RayleighFastChannel()
    if kind == "rayleigh-block" and extra <= {"block_length"}:
        return RayleighBlockChannel(block_length=spec.get("block_length"))
    if kind == "ofdm":
        return OFDMChannel(OFDMConfig.from_spec(spec))  # names the bad field: channel.<field>
    if kind in CHANNEL_TYPES:
        raise ConfigError("channel", spec, f"no keys besides 'type' for {kind!r} ({_ALLOWED})")
    raise ConfigError("channel", spec if len(spec) > 1 else kind, _ALLOWED)
