"""Frame error rate of an LDPC code with BPSK on the real AWGN channel, and FER thresholds.

Model (one real dimension per code bit): bit ``b`` is sent as ``s = 2b - 1`` (bit 1 -> +1),
``y = s + w`` with ``w ~ N(0, sigma2)`` and ``sigma2 = 1 / (2 R Eb/N0)`` (Es = 1 per bit,
Eb = Es / R, N0 = 2 sigma2). The decoder gets ``llr = 2 y / sigma2``, Sionna's
convention (positive -> bit 1). A frame error is any wrong information bit.

Example
-------
>>> import torch
>>> from linksim.digital.ldpc import get_code, simulate_fer
>>> g = torch.Generator().manual_seed(1)
>>> errors, frames = simulate_fer(get_code("wifi-648-1/2"), ebno_db=4.0, frames=64, generator=g)
>>> frames, errors
(64, 0)
"""

from __future__ import annotations

import json
import math
from importlib import resources

import torch

from linksim.errors import ConfigError
from linksim.digital.ldpc.code import LDPCCode
from linksim.digital.ldpc.decoder import LDPCDecoder


def bpsk_awgn_llr(codeword: torch.Tensor, ebno_db: float, rate: float,
                  generator: torch.Generator) -> torch.Tensor:
    """BPSK over real AWGN at a given Eb/N0, returning channel LLRs.

    :param codeword: [B, n] `torch.float32` in {0, 1}.
    :param ebno_db: Eb/N0 in dB (energy per *information* bit).
    :param rate: Code rate R = k/n.
    :param generator: Source of the noise (on ``codeword``'s device).
    :output llr: [B, n] `torch.float32`, ``2 y / sigma2`` (positive -> bit 1).
    """
    sigma2 = 1.0 / (2.0 * rate * 10.0 ** (ebno_db / 10.0))
    s = 2.0 * codeword - 1.0
    w = torch.randn(codeword.shape, generator=generator, dtype=torch.float32, device=codeword.device)
    y = s + math.sqrt(sigma2) * w
    return (2.0 / sigma2) * y


def simulate_fer(code: LDPCCode, ebno_db: float, frames: int, generator: torch.Generator,
                 iterations: int = 20, backend: str = "sionna", check_update: str = "boxplus-phi",
                 batch_size: int = 1000, decoder: LDPCDecoder | None = None) -> tuple[int, int]:
    """Count frame errors of ``code`` with BPSK on real AWGN.

    All randomness (information bits, noise) comes from ``generator``, so the same
    generator state gives the same counts.

    :param code: The code.
    :param ebno_db: Eb/N0 in dB.
    :param frames: Number of codewords to simulate (>= 1).
    :param generator: `torch.Generator` (CPU).
    :param iterations: BP iterations.
    :param backend: Decoder backend (``"sionna"``, ``"numba"`` or ``"pyldpc"``).
    :param check_update: Check-node rule (see :class:`LDPCDecoder`).
    :param batch_size: Codewords decoded per call.
    :param decoder: Reuse this decoder instead of building one (then ``iterations``,
        ``backend`` and ``check_update`` are ignored).
    :output errors: Frames with at least one wrong information bit.
    :output frames: Frames simulated (= ``frames``).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ConfigError("frames", frames, "an integer >= 1")
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer >= 1")
    dec = decoder or LDPCDecoder(code, backend=backend, iterations=iterations, check_update=check_update)
    errors, done = 0, 0
    while done < frames:
        b = min(batch_size, frames - done)
        u = torch.randint(0, 2, (b, code.k), generator=generator).to(torch.float32)
        llr = bpsk_awgn_llr(code.encode(u), ebno_db, code.rate, generator)
        u_hat, _ = dec.decode(llr)
        errors += int((u_hat != u).any(dim=1).sum())
        done += b
    return errors, frames


def ebno_at_fer(points: list[tuple[float, float]], target_fer: float = 1e-2) -> float:
    """Eb/N0 where the FER crosses ``target_fer``, interpolating log10(FER) linearly in dB.

    :param points: (ebno_db, fer) pairs, any order; the FER must fall through the target.
    :output ebno_db: The interpolated crossing (between the last point above the target
        and the first at or below it).
    :raises ValueError: If the points do not bracket the target.
    """
    pts = sorted(points)
    for (x0, f0), (x1, f1) in zip(pts, pts[1:]):
        if f0 > target_fer >= f1:
            if f1 <= 0:
                raise ValueError(f"FER 0 at {x1} dB: cannot interpolate on a log scale; add frames")
            t = (math.log10(target_fer) - math.log10(f0)) / (math.log10(f1) - math.log10(f0))
            return x0 + t * (x1 - x0)
    raise ValueError(f"points {pts} do not bracket FER {target_fer}")


def wifi_thresholds() -> dict:
    """The measured FER-1e-2 thresholds shipped in ``wifi_thresholds.json`` (may be empty).

    :output table: ``{"wifi-1944-1/2": {"ebno_db_fer_1e-2": ..., "frames": ..., ...}, ...}``.
    """
    f = resources.files("linksim.digital.ldpc").joinpath("wifi_thresholds.json")
    return json.loads(f.read_text()) if f.is_file() else {}


def measure_fer_threshold(code: LDPCCode, start_db: float, step_db: float = 0.2,
                          target_fer: float = 1e-2, max_errors: int = 100, max_frames: int = 10000,
                          seed: int = 0, iterations: int = 20, check_update: str = "boxplus-phi",
                          batch_size: int = 200, max_points: int = 8,
                          log=None, backend: str = "sionna", **decoder_options) -> tuple[float, list[dict]]:
    """Walk an Eb/N0 grid until the FER brackets ``target_fer``, then interpolate.

    Each point runs batches until ``max_errors`` frame errors or ``max_frames`` frames.
    The grid starts at ``start_db`` and moves by ``step_db`` up (FER above target) or
    down (FER at or below target) until one point lies on each side. Point ``i`` uses
    ``torch.Generator().manual_seed(seed * 1000 + i)``.

    ``backend``, ``check_update`` (`None`: the backend's default) and ``decoder_options``
    go to :class:`LDPCDecoder` (the shipped table was measured with Sionna's flooding
    sum-product, the default here).

    :output ebno_db: Interpolated Eb/N0 at ``target_fer`` (see :func:`ebno_at_fer`).
    :output points: One dict per measured point: ebno_db, errors, frames, fer, seconds.
    """
    import time

    dec = LDPCDecoder(code, backend=backend, iterations=iterations, check_update=check_update, **decoder_options)
    points: list[dict] = []
    x = start_db
    for i in range(max_points):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        t0 = time.perf_counter()
        errors, frames = 0, 0
        while errors < max_errors and frames < max_frames:
            b = min(batch_size, max_frames - frames)
            e, _ = simulate_fer(code, x, b, g, decoder=dec, batch_size=b)
            errors, frames = errors + e, frames + b
        pt = {"ebno_db": round(x, 4), "errors": errors, "frames": frames, "fer": errors / frames,
              "seconds": round(time.perf_counter() - t0, 2)}
        points.append(pt)
        if log:
            log(pt)
        above = [p for p in points if p["fer"] > target_fer]
        below = [p for p in points if p["fer"] <= target_fer]
        if above and below and min(p["ebno_db"] for p in below) > max(p["ebno_db"] for p in above):
            lo = max(above, key=lambda p: p["ebno_db"])
            hi = min(below, key=lambda p: p["ebno_db"])
            if hi["errors"] > 0:
                return ebno_at_fer([(lo["ebno_db"], lo["fer"]), (hi["ebno_db"], hi["fer"])], target_fer), points
            x = (lo["ebno_db"] + hi["ebno_db"]) / 2     # zero errors: refine between them
            continue
        x = x + step_db if pt["fer"] > target_fer else x - step_db
    raise RuntimeError(f"no FER {target_fer} crossing found within {max_points} points: {points}")
