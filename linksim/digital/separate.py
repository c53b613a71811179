"""Separate source-channel coding: codec → LDPC → modulation → channel → BP → codec.

Transmitter, per image (docs/ARCHITECTURE.md §1):

1. k complex channel uses from the :class:`~linksim.link.Bandwidth`; at the SNR, the MCS
   (one, or link adaptation over a list, :func:`~linksim.digital.mcs.select_mcs`).
2. Bit budget: the whole codewords that fit in k uses, ``floor(k·m / n)`` of them, each
   carrying ``k_c`` information bits: budget = floor(k·m/n)·k_c ≤ k·m·R.
3. The best codec point (highest PSNR) whose payload fits (:class:`~linksim.digital.source.SourceLadder`).
4. The payload bits fill ``ceil(P / k_c)`` codewords, the last one padded with zeros;
   codewords are mapped to unit-average-energy symbols (E|s|² = P = 1, so no further
   normalization: the SNR of docs/ARCHITECTURE.md §2 is the per-symbol SNR). Unused uses stay idle.

Receiver: perfect CSI, zero-forcing equalization, APP demapping with noise σ²/|h|²
(the |h|²-scaled LLRs), BP decoding of every codeword.

The chain is made of public blocks, one per stage, built for the MCS in use
(:class:`SeparateStages`)::

    info bits [C, k_c] ─► encoder ─► [C, n] ─► mapper ─► symbols [1, C·n/m] ─► channel
        ─► equalizer ─► (y, σ²/|h|²) ─► demapper ─► LLR [C, n] ─► decoder ─► (bits [C, k_c], parity ok [C])

Each stage is an argument of :class:`SeparateScheme`: a factory called with the MCS's code
(encoder, decoder) or modulation (mapper, demapper) — a block class is one — so a user can swap
one block (their own decoder) or insert one between two stages by wrapping a block.

**Failure rule** (explicit, configurable): if *any* information bit of *any* codeword is
wrong after decoding — a CRC would flag it; the simulator compares with the sent bits —
the codec stream is unusable and the receiver outputs a constant image of value
``failure_fill`` (default 0.5, mid-gray) and reports ``decoded=False``. When not even the
coarsest codec point fits the budget, nothing is sent: same output, ``fits=False``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linksim.channel import equalize
from linksim.data import to_tensor, to_uint8
from linksim.digital.codecs import make_codec
from linksim.digital.ldpc import LDPCCode, LDPCDecoder, LDPCEncoder
from linksim.digital.mcs import MCS, select_mcs
from linksim.digital.modulation import Demapper, Mapper, Modulation
from linksim.digital.source import SourceLadder, validate_downscale
from linksim.errors import ConfigError
from linksim.link import Bandwidth, LinkOutput, Scheme
from linksim.units import ebno_db


def default_cache_dir() -> Path:
    """Where codec tables are cached on disk: ``$LINKSIM_CACHE``, else ``$XDG_CACHE_HOME/linksim``,
    else ``~/.cache/linksim``."""
    if os.environ.get("LINKSIM_CACHE"):
        return Path(os.environ["LINKSIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linksim"


class LadderCache:
    """Source ladders by (codec configuration, image bytes), shared by the schemes of a run."""

    def __init__(self, cache_dir: Path | None):
        self.cache_dir = cache_dir
        self._ladders: dict[tuple, SourceLadder] = {}

    def get(self, image: np.ndarray, codec: dict, downscale: list[int]) -> SourceLadder:
        options = {k: v for k, v in codec.items() if k != "name"}
        key = (codec["name"], tuple(sorted(options.items())), tuple(downscale), image.shape, hash(image.tobytes()))
        if key not in self._ladders:
            self._ladders[key] = SourceLadder(image, codec["name"], options, downscale, self.cache_dir)
        return self._ladders[key]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] → float32 [3, H, W] in [0, 1]."""
    return to_tensor([image])[0]


class SourceCodedScheme(Scheme):
    """Shared parts of the schemes that send a codec payload (separate, capacity).

    Parameters
    ----------
    name : str
        Label in the results.
    bandwidth : Bandwidth
        The channel budget of an image.
    codec : dict | str
        ``{"name": "bpg", "chroma": "420"}``-style options of
        :func:`~linksim.digital.codecs.make_codec`, or a codec name (default ``"bpg"``).
    downscale : list[int]
        Factors the image is also encoded at (``[1, 2, 4]``), see
        :class:`~linksim.digital.source.SourceLadder`; default ``[1]``.
    ladders : LadderCache | None
        Codec tables shared between schemes; None: a cache of this scheme's own, on disk
        under :func:`default_cache_dir`.
    failure_fill : float
        The value in [0, 1] of every pixel of the receiver's output when the payload is lost.

    :raises ConfigError: a bad codec, downscale list or failure fill (field named).
    """

    def __init__(self, name: str, bandwidth: Bandwidth, codec: dict | str = "bpg", downscale=(1,),
                 ladders: LadderCache | None = None, failure_fill: float = 0.5):
        super().__init__(name, bandwidth)
        codec = {"name": codec} if isinstance(codec, str) else codec
        if not isinstance(codec, dict) or "name" not in codec:
            raise ConfigError("codec", codec, "a codec name ('bpg', 'jpeg') or {'name': 'bpg', 'chroma': '420'}")
        make_codec(codec["name"], **{k: v for k, v in codec.items() if k != "name"})  # fails now, not mid-sweep
        if isinstance(failure_fill, bool) or not isinstance(failure_fill, (int, float)) or not 0 <= failure_fill <= 1:
            raise ConfigError("failure_fill", failure_fill, "a number in [0, 1]")
        downscale = validate_downscale(list(downscale) if isinstance(downscale, tuple) else downscale, "downscale")
        ladders = ladders if ladders is not None else LadderCache(default_cache_dir())
        self.codec, self.downscale, self.ladders, self.failure_fill = codec, downscale, ladders, failure_fill
        self._last: tuple[torch.Tensor, int, SourceLadder] | None = None
        self._received: tuple[SourceLadder | None, dict] = (None, {})

    def ladder(self, image: torch.Tensor) -> SourceLadder:
        """The ladder of ``image`` (float [3, H, W]); found by its uint8 pixels, or at once when
        ``image`` is the tensor of the previous call (same storage, shape and version counter,
        which every in-place torch operation bumps): a sweep sends one image at every SNR and
        trial, and converting and hashing a 768×512 image each time cost a third of a cliff sweep."""
        same = self._last is not None and self._last[0].data_ptr() == image.data_ptr() \
            and self._last[0].shape == image.shape and self._last[0].stride() == image.stride() \
            and self._last[0]._version == image._version == self._last[1]
        if not same:
            # holding the tensor keeps its memory from being reused by another image
            self._last = (image, image._version, self.ladders.get(to_uint8(image), self.codec, self.downscale))
        return self._last[2]

    def run(self, images, snr_db, channel, generator) -> LinkOutput:
        height, width = images.shape[-2:]
        k = self.bandwidth.channel_uses(height, width)
        rows = [self.send_one(image, k, float(snr_db), channel, generator) for image in images]
        x_hat = torch.stack([row.pop("x_hat") for row in rows])
        ids = [row.pop("x_hat_id") for row in rows]
        bits = torch.tensor([row.pop("bits") for row in rows], dtype=torch.int64)
        decoded = torch.tensor([row.pop("decoded") for row in rows])
        extras = {key: [row[key] for row in rows] for key in rows[0]}
        return LinkOutput(x_hat=x_hat, k=k, bits=bits, decoded=decoded, extras=extras, x_hat_ids=ids)

    def send_one(self, image, k, snr_db, channel, generator) -> dict:
        raise NotImplementedError

    def failed(self, image: torch.Tensor) -> dict:
        """The receiver's output when the payload is lost: ``x_hat`` (float [3, H, W], all
        ``failure_fill``) and its content id."""
        return dict(x_hat=torch.full_like(image, self.failure_fill),
                    x_hat_id=("fill", self.failure_fill, tuple(image.shape)))

    def received(self, ladder: SourceLadder, rung) -> dict:
        """The receiver's output when ``rung`` arrives intact: ``x_hat`` (float [3, H, W]) and its
        content id. The tensors of the current image's rungs are kept (a sweep sends the same
        few rungs at many points; converting a Kodak image costs about a millisecond)."""
        if self._received[0] is not ladder:
            self._received = (ladder, {})
        key = (id(ladder), rung.scale, rung.point.quality)
        cache = self._received[1]
        if key not in cache:
            cache[key] = image_tensor(ladder.reconstruction(rung))
        return dict(x_hat=cache[key], x_hat_id=("codec", *key))

    @staticmethod
    def codec_report(rung) -> dict:
        """The results columns describing the codec point sent (``fits=False`` when none fits)."""
        if rung is None:
            return dict(codec_quality=None, codec_scale=None, codec_psnr=None, fits=False)
        return dict(codec_quality=rung.point.quality, codec_scale=rung.scale, codec_psnr=rung.psnr_db, fits=True)


@dataclass(frozen=True)
class SeparateStages:
    """The blocks of the separate chain for one MCS, in the order the bits cross them.

    Attributes
    ----------
    encoder : info bits float32 [C, k_c] in {0, 1} → codewords float32 [C, n]
        (default :class:`~linksim.digital.ldpc.LDPCEncoder`).
    mapper : bits float32 [1, C·n] → symbols complex64 [1, C·n/m], E|x|² = 1
        (default :class:`~linksim.digital.modulation.Mapper`).
    equalizer : :class:`~linksim.channel.ChannelOutput` → (y complex64 [1, S], noise_var float32
        [1, S], σ²/|h|² per symbol) (default :func:`~linksim.channel.equalize`, zero forcing).
    demapper : (y, noise_var) → LLR float32 [1, S·m], ln P(b=1|y)/P(b=0|y)
        (default :class:`~linksim.digital.modulation.Demapper`, APP).
    decoder : LLR float32 [C, n] → (info bits float32 [C, k_c] in {0, 1}, parity_ok bool [C])
        (default :class:`~linksim.digital.ldpc.LDPCDecoder`).
    """

    encoder: Callable[[torch.Tensor], torch.Tensor]
    mapper: Callable[[torch.Tensor], torch.Tensor]
    equalizer: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
    demapper: Callable[[torch.Tensor, Any], torch.Tensor]
    decoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class SeparateScheme(SourceCodedScheme):
    """Codec + LDPC + modulation over the channel; the image is lost on any residual error.

    Parameters
    ----------
    name, bandwidth, codec, downscale, ladders, failure_fill
        As :class:`SourceCodedScheme`.
    mcs : MCS | list[MCS]
        One MCS, or several for link adaptation (:func:`~linksim.digital.mcs.select_mcs`).
    decoder : dict | callable | None
        A dict: options of :class:`~linksim.digital.ldpc.LDPCDecoder` — ``backend`` (``"numba"``,
        the default for 802.11n codes, | ``"sionna"`` | ``"pyldpc"``), ``iterations``, and optionally
        ``check_update``, ``schedule``, ``normalization``, ``offset``, ``threads``. A callable:
        a factory ``code -> decoder block`` (see :class:`SeparateStages`). None: ``LDPCDecoder``
        with its defaults.
    encoder : callable ``code -> block``, default :class:`~linksim.digital.ldpc.LDPCEncoder`
    mapper : callable ``modulation -> block``, default :class:`~linksim.digital.modulation.Mapper`
    demapper : callable ``modulation -> block``, default :class:`~linksim.digital.modulation.Demapper`
    equalizer : callable ``ChannelOutput -> (y, noise_var)``, default :func:`~linksim.channel.equalize`
        The stages of the chain (:class:`SeparateStages`). Each factory is called once per code
        (encoder, decoder) or modulation (mapper, demapper) the scheme uses, with the
        :class:`~linksim.digital.ldpc.LDPCCode` or :class:`~linksim.digital.modulation.Modulation`,
        and its block is kept. A block class is a factory: ``demapper=MyDemapper``.

    The failure rule compares the decoder's bits with the bits sent, so a custom decoder is
    judged by what it returns, not by its own parity flag.

    Example
    -------
    >>> class Clipped(Demapper):                     # doctest: +SKIP
    ...     def __call__(self, y, noise_var):        # LLRs saturate at ±4 before the decoder
    ...         return super().__call__(y, noise_var).clamp(-4, 4)
    >>> SeparateScheme("clipped", Bandwidth(cpp=1/16), "bpg", mcs=MCS("wifi-1944-1/2", "bpsk"),
    ...                demapper=Clipped)             # doctest: +SKIP
    """

    kind = "separate"

    def __init__(self, name: str, bandwidth: Bandwidth, codec: dict | str = "bpg", downscale=(1,),
                 ladders: LadderCache | None = None, *, mcs: MCS | list[MCS], decoder: dict | Callable | None = None,
                 failure_fill: float = 0.5, encoder: Callable[[LDPCCode], Callable] = LDPCEncoder,
                 mapper: Callable[[Modulation], Callable] = Mapper, demapper: Callable[[Modulation], Callable] = Demapper,
                 equalizer: Callable = equalize):
        super().__init__(name, bandwidth, codec, downscale, ladders, failure_fill)
        self.mcs = [mcs] if isinstance(mcs, MCS) else list(mcs) if isinstance(mcs, (list, tuple)) else mcs
        if not isinstance(self.mcs, list) or not self.mcs or not all(isinstance(m, MCS) for m in self.mcs):
            raise ConfigError("mcs", mcs, "an MCS('wifi-1944-1/2', 'bpsk') or a non-empty list of them")
        if decoder is None or isinstance(decoder, dict):
            decoder = partial(LDPCDecoder, **(decoder or {}))
        for field, stage in (("decoder", decoder), ("encoder", encoder), ("mapper", mapper),
                             ("demapper", demapper), ("equalizer", equalizer)):
            if not callable(stage):
                raise ConfigError(field, stage, "a callable (a block class, or a factory returning a block)"
                                  + (" or a dict of LDPCDecoder options" if field == "decoder" else ""))
        self._factories = dict(encoder=encoder, mapper=mapper, demapper=demapper, decoder=decoder)
        self.equalizer = equalizer
        self._blocks: dict[tuple[str, str], Callable] = {}   # (stage, code or modulation name) → block

    def _block(self, stage: str, of: LDPCCode | Modulation) -> Callable:
        key = (stage, of.name)
        if key not in self._blocks:
            self._blocks[key] = self._factories[stage](of)
        return self._blocks[key]

    def stages(self, mcs: MCS) -> SeparateStages:
        """The blocks that carry an image at ``mcs`` (built on first use, then kept)."""
        return SeparateStages(encoder=self._block("encoder", mcs.code), mapper=self._block("mapper", mcs.modulation),
                              equalizer=self.equalizer, demapper=self._block("demapper", mcs.modulation),
                              decoder=self._block("decoder", mcs.code))

    def send_one(self, image, k, snr_db, channel, generator) -> dict:
        mcs = select_mcs(self.mcs, snr_db)
        code, modulation = mcs.code, mcs.modulation
        m = modulation.bits_per_symbol
        budget = (k * m // code.n) * code.k
        ladder = self.ladder(image)
        rung = ladder.best_fitting(budget)
        report = dict(mcs=mcs.label, ebno_db=float(ebno_db(snr_db, m, code.rate)), budget_bits=budget, codewords=0, codeword_errors=0, channel_uses_used=0,
                      **self.codec_report(rung))
        if rung is None:
            return dict(bits=0, decoded=False, **self.failed(image), **report)

        payload = np.unpackbits(np.frombuffer(rung.point.payload, dtype=np.uint8))
        n_codewords = math.ceil(payload.size / code.k)
        info = torch.zeros(n_codewords * code.k)
        info[: payload.size] = torch.from_numpy(payload.astype(np.float32))
        info = info.view(n_codewords, code.k)

        stages = self.stages(mcs)
        symbols = stages.mapper(stages.encoder(info).reshape(1, -1))  # [1, n_codewords·n/m]
        received = channel(symbols, snr_db, generator)
        y_eq, noise_var = stages.equalizer(received)
        llr = stages.demapper(y_eq, noise_var).reshape(n_codewords, code.n)
        info_hat, _ = stages.decoder(llr)
        codeword_errors = int((info_hat != info).any(dim=1).sum())

        decoded = codeword_errors == 0
        output = self.received(ladder, rung) if decoded else self.failed(image)
        report.update(codewords=n_codewords, codeword_errors=codeword_errors, channel_uses_used=symbols.shape[1])
        return dict(bits=int(payload.size), decoded=decoded, **output, **report)
