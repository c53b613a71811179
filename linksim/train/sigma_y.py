"""Calibrating DDNM+'s σ_y on (x, x̂) pairs: how far a scheme's output is from the truth
*in the range of A*.

SING-Zero treats a DeepJSCC output x̂ as the measurement y = A x + n of a linear operator A
(e.g. 8×8 average pooling). DDNM+ needs the std σ_y of n. A learned decoder's error is not
white channel noise, so instead of guessing we measure it: for every SNR, pass images x
through the scheme (the channel in the loop, one seeded generator per SNR and trial) and
take

    σ_y(SNR) = RMS over images, trials, pixels of  A x̂ − A x        (image units, [0, 1])

with x̂ clipped to [0, 1] as the runner hands it to a restorer. The table goes into the
scenario as ``sigma_y: {SNR_dB: σ_y, …}`` (:class:`linksim.restore.ddnm.SigmaYTable`
interpolates it). Calibrate on images other than the ones you evaluate on (e.g. other faces
than the test faces), with the checkpoint and operator of the restorer entry.

Command: ``linksim calibrate sigma-y CHECKPOINT --operator avgpool8 --data DIR --resize 64``.
It lives in the training package because, like the INN and control-module trainers, it fits
a restorer setting to a scheme by running the link (``channel``) on data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from linksim.channel import make_channel
from linksim.errors import ConfigError
from linksim.restore.operators import LinearOperator, make_operator
from linksim.seeding import point_generator

__all__ = ["measure_sigma_y", "format_sigma_y"]


def measure_sigma_y(model, operator: str | LinearOperator, images: torch.Tensor, snr_db: Sequence[float], *,
                    channel="awgn", trials: int = 2, seed: int = 0, progress: bool = False) -> dict[float, float]:
    """σ_y per SNR (image units) of ``model``'s outputs in the range of ``operator``.

    :param model: a DeepJSCC model (``model(x, snr_db, channel, generator) -> x̂``).
    :param images: float [N, 3, H, W] in [0, 1], H and W fitting the operator.
    :param snr_db: the SNRs (dB) to measure at.
    :param trials: channel realizations per image and SNR.
    :returns: ``{snr_db: σ_y}`` in the order given.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError("trials", trials, "a positive integer (channel realizations per SNR)")
    if not len(snr_db):
        raise ConfigError("snr", list(snr_db), "one or more SNRs (dB)")
    operator = make_operator(operator) if isinstance(operator, str) else operator
    channel = make_channel(channel)
    device = next(model.parameters()).device
    model.eval()
    truth = operator.A(images.double())  # A x: the same for every SNR and trial
    table = {}
    bar = tqdm(total=len(snr_db) * trials, desc="calibrate σ_y", unit="pass", disable=not progress, leave=False)
    for snr in snr_db:
        squared, count = 0.0, 0
        for trial in range(trials):
            generator = point_generator(seed, "calibrate-sigma-y", "batch", float(snr), trial, device=device)
            with torch.no_grad():
                x_hat = model(images.to(device), float(snr), channel, generator).clamp(0, 1).cpu()
            error = operator.A(x_hat.double()) - truth
            squared, count = squared + float(error.pow(2).sum()), count + error.numel()
            bar.update()
        table[float(snr)] = (squared / count) ** 0.5
    bar.close()
    return table


def format_sigma_y(table: dict[float, float]) -> str:
    """The table as a scenario line: ``sigma_y: {-5: 0.1779, 0: 0.1288, …}``."""
    entries = ", ".join(f"{snr:g}: {sigma:.4f}" for snr, sigma in table.items())
    return f"sigma_y: {{{entries}}}"
