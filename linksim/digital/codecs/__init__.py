"""Image codecs of the separate scheme and their per-image rate–quality tables.

- ``bpg``: HEVC intra at fixed QP 0–51 (x265 through pillow-heif), chroma ``"444"``
  (default) or ``"420"``; payload = HEVC Annex-B stream (see :mod:`.bpg`).
- ``jpeg``: baseline JPEG, quality 1–95, chroma ``"420"`` (default) or ``"444"``;
  payload = JPEG stream without APPn/COM segments (see :mod:`.jpeg`).

Example
-------
>>> import skimage.data
>>> img = skimage.data.astronaut()                          # uint8 [512, 512, 3]
>>> codec = make_codec("bpg", chroma="420")
>>> table = rate_quality_table(codec, img, "astronaut", cache_dir=None)   # ~15 s, once
>>> table.best_fitting(2e5)                                 # bit budget 200 kbit
CodecPoint(quality=26, payload_bits=181168, container_bits=2336, psnr_db=35.166)
>>> x_hat = table.decoded(table.best_fitting(2e5))          # uint8 [512, 512, 3]
"""

from __future__ import annotations

from linksim.digital.codecs.bpg import BPGCodec, slice_qp
from linksim.digital.codecs.jpeg import JPEGCodec
from linksim.digital.codecs.table import (Codec, CodecPoint, RateQualityTable, clear_memory_cache,
                                          rate_quality_table)
from linksim.errors import ConfigError

CODECS = {"bpg": BPGCodec, "jpeg": JPEGCodec}


def make_codec(name: str, **options) -> Codec:
    """Make a codec by name.

    Parameters
    ----------
    name : ``"bpg"`` | ``"jpeg"``
    **options
        ``chroma`` (``"444"``/``"420"``) for both.

    Raises
    ------
    ConfigError
        Unknown name, unknown option, or a value not allowed.
    """
    key = str(name).lower() if isinstance(name, str) else name
    if key not in CODECS:
        raise ConfigError("codec", name, f"one of {sorted(CODECS)}")
    allowed = {"chroma"}
    for opt in options:
        if opt not in allowed:
            raise ConfigError(f"{key}.{opt}", options[opt], f"one of the options {sorted(allowed)}")
    return CODECS[key](**options)


__all__ = ["BPGCodec", "CODECS", "Codec", "CodecPoint", "ConfigError", "JPEGCodec", "RateQualityTable",
           "clear_memory_cache", "make_codec", "rate_quality_table", "slice_qp"]
