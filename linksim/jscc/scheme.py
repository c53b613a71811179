"""The DeepJSCC scheme: a trained encoder/decoder pair as a :class:`~linksim.link.Scheme`.

    image ─► DeepJSCC encoder ─► z ∈ ℂ^k (‖z‖² = kP) ─► channel ─► LMMSE ─► decoder ─► x̂

Analog joint source–channel coding (docs/ARCHITECTURE.md §1): no bits, no codec, no decoding failure —
``bits = 0`` and ``decoded = True`` for every image, and the quality degrades smoothly
with the SNR instead of falling off a cliff.

**Bandwidth.** A checkpoint is trained for one BCR ρ; the scheme refuses a checkpoint
whose ρ differs from the scenario's bandwidth (and names the checkpoints that match).
The model pads an image to multiples of its downsampling 2^d (16 for the shipped
models), so ``k = channel_uses(H, W)`` equals the scenario budget ``floor(cpp·H·W)``
exactly when 16 divides H and W, and is larger otherwise: set ``crop_multiple: 16`` in
the scenario to give every scheme the same k (the runner warns when they differ).
``LinkOutput.k`` is always the k the model really spent.

**SNR range.** Outside the SNR range a checkpoint was trained on the model extrapolates:
the scheme warns once per SNR.

**Randomness.** The channel runs on the CPU with the point's generator, whatever the
model's device, so the channel draws are the same on every machine.

Example
-------
>>> from linksim.channel import make_channel
>>> from linksim.link import Bandwidth
>>> scheme = DeepJSCCScheme("DeepJSCC", Bandwidth(bcr=1/48), "deepjscc-awgn-r1_48")  # doctest: +SKIP
>>> out = scheme.run(x, 5.0, make_channel("awgn"), torch.Generator().manual_seed(0))  # doctest: +SKIP
>>> out.k == scheme.channel_uses(*x.shape[-2:])  # doctest: +SKIP
True
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch

from linksim import zoo
from linksim.channel.on_cpu import ChannelOnCPU
from linksim.errors import ConfigError
from linksim.jscc.models import DeepJSCC, DeepJSCCConfig
from linksim.link import Bandwidth, LinkOutput, Scheme

__all__ = ["DeepJSCCScheme", "check_bcr", "checkpoint_config", "checkpoints_at"]

_REL_TOL = 1e-9


def checkpoint_config(name_or_folder: str | Path) -> DeepJSCCConfig:
    """The architecture of a deepjscc checkpoint, read from its ``config.json`` (weights untouched).

    :raises ConfigError: unknown name, missing files, or a checkpoint of another kind.
    """
    folder = zoo.resolve(name_or_folder)
    cfg = zoo.read_config(folder)
    if cfg["kind"] != "deepjscc":
        raise ConfigError("model", str(name_or_folder), f"a deepjscc checkpoint (this one is {cfg['kind']!r}); "
                                                        f"deepjscc checkpoints: {zoo.available('deepjscc')}")
    return DeepJSCCConfig.from_dict(cfg["config"])


def checkpoints_at(bcr: float) -> list[str]:
    """Names of the deepjscc checkpoints (shipped or under ``$LINKSIM_CHECKPOINTS``) trained at ρ = ``bcr``."""
    names = []
    for name in zoo.available("deepjscc"):
        try:
            rho = checkpoint_config(name).bcr()
        except ConfigError:
            continue
        if abs(rho - bcr) <= _REL_TOL * bcr:
            names.append(name)
    return names


def _label(rho: float) -> str:
    f = Fraction(rho).limit_denominator(100000)
    return str(f) if abs(float(f) - rho) <= _REL_TOL * rho else f"{rho:.6g}"


def bcr_matches(config: DeepJSCCConfig, bandwidth: Bandwidth) -> bool:
    """Whether a checkpoint was trained at the ρ of ``bandwidth`` (to a relative 1e-9)."""
    return abs(config.bcr() - bandwidth.rho) <= _REL_TOL * bandwidth.rho


def check_bcr(config: DeepJSCCConfig, bandwidth: Bandwidth, model: str, field: str = "model") -> None:
    """Refuse a checkpoint whose ρ differs from the scenario bandwidth's.

    :raises ConfigError: naming ``field``, the checkpoint, both ρ and the checkpoints that match.
    """
    wanted = bandwidth.rho
    have = config.bcr()
    if not bcr_matches(config, bandwidth):
        matching = checkpoints_at(wanted)
        hint = f"the deepjscc checkpoints at that ρ: {matching}" if matching else \
            f"a model trained with `linksim train deepjscc --bcr {_label(wanted)}` (no checkpoint at that ρ is installed)"
        raise ConfigError(field, str(model), f"a checkpoint trained at the scenario's ρ = {_label(wanted)} "
                                             f"(cpp {_label(3 * wanted)}); this one has ρ = {_label(have)} — use {hint}")


class DeepJSCCScheme(Scheme):
    """A DeepJSCC checkpoint as a scheme.

    Parameters
    ----------
    name : str
        Label in the results.
    bandwidth : Bandwidth
        The scenario budget; the checkpoint's ρ must equal it.
    model : str | Path
        A checkpoint name (``deepjscc-awgn-r1_48``) or folder; see :mod:`linksim.zoo`.
    device : str | torch.device
        Where the model runs (default CPU). The channel always runs on the CPU.

    The weights are loaded once, on first use (:attr:`model`), and cached in the scheme.

    :raises ConfigError: unknown checkpoint, not a deepjscc checkpoint, or ρ mismatch.
    """

    kind = "deepjscc"

    def __init__(self, name: str, bandwidth: Bandwidth, model: str | Path, device: str | torch.device | None = None):
        super().__init__(name, bandwidth)
        self.model_name = str(model)
        self.folder = zoo.resolve(model)
        self.config = checkpoint_config(self.folder)
        check_bcr(self.config, bandwidth, self.model_name)
        self.device = torch.device(device or "cpu")
        self._model: DeepJSCC | None = None
        self._warned_snr: set[float] = set()
        self._warned_channel = False

    @property
    def model(self) -> DeepJSCC:
        """The loaded model (float32, eval mode, on :attr:`device`), loaded on first access."""
        if self._model is None:
            self._model = zoo.load_deepjscc(self.folder, device=self.device).float().eval()
        return self._model

    def channel_uses(self, height: int, width: int) -> int:
        """The k this scheme spends on an H×W image (the model pads to multiples of 2^d)."""
        return self.model.channel_uses(height, width)

    def run(self, images: torch.Tensor, snr_db: float, channel, generator: torch.Generator) -> LinkOutput:
        """Send ``images`` (float32 [B,3,H,W] in [0,1]) through the model and ``channel`` at ``snr_db``.

        ``generator`` is a CPU generator (the channel's draws); the encoder and decoder are
        deterministic.
        """
        snr = float(snr_db)
        model = self.model
        if snr not in self._warned_snr:
            self._warned_snr.add(snr)
            model.warn_if_outside(snr)
        channel_type = getattr(channel, "name", None)
        if not self._warned_channel and channel_type and channel_type != model.config.channel:
            self._warned_channel = True
            import warnings

            warnings.warn(f"{self.name}: checkpoint {self.model_name} was trained on {model.config.channel!r}, "
                          f"run on {channel_type!r} (mismatched channel)", stacklevel=2)
        height, width = images.shape[-2:]
        with torch.no_grad():
            x = images.to(self.device, torch.float32)
            x_hat = model(x, snr, ChannelOnCPU(channel, self.device), generator)
        x_hat = x_hat.to("cpu", torch.float32).clamp(0, 1)
        batch = images.shape[0]
        k = model.channel_uses(height, width)
        return LinkOutput(x_hat=x_hat, k=k, bits=torch.zeros(batch, dtype=torch.int64),
                          decoded=torch.ones(batch, dtype=torch.bool),
                          extras={"model": [self.model_name] * batch, "channel_uses_used": [k] * batch})
