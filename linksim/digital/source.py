"""The source-coding ladder of one image: every (scale, quality) the codec can send.

A separate scheme and the capacity bound both ask one question of the codec: *given a bit
budget, what is the best image I can send?* The ladder answers it from the image's
rate–quality tables (each point encoded once per image and cached by
:func:`linksim.digital.codecs.rate_quality_table`, never per SNR point).

Optionally the ladder also holds encodings of the image downscaled by integer factors
(``downscale: [1, 2]``); the receiver upsamples them back (bicubic). At very low budgets,
where even the coarsest quantizer of the full-size image does not fit, this is how a
practical codec still delivers a picture. "Best" is the highest PSNR against the
*original* full-size image among the points whose payload fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from linksim.digital.codecs import CodecPoint, make_codec, rate_quality_table
from linksim.digital.codecs.table import psnr_uint8
from linksim.errors import ConfigError


@dataclass(frozen=True)
class Rung:
    """One point of the ladder: a codec point at a downscale factor."""

    scale: int
    point: CodecPoint
    psnr_db: float  # of the upsampled reconstruction vs. the original image

    @property
    def payload_bits(self) -> int:
        return self.point.payload_bits


class SourceLadder:
    """The codec points of one image at each downscale factor, for one codec configuration.

    Parameters
    ----------
    image : uint8 [H, W, 3]
    codec_name, codec_options : passed to :func:`linksim.digital.codecs.make_codec`
    downscale : list[int]
        Integer downscale factors to include (1 = full size).
    cache_dir : Path or None
        Where rate–quality tables are cached on disk.
    """

    def __init__(self, image: np.ndarray, codec_name: str, codec_options: dict, downscale: list[int], cache_dir: Path | None):
        self.image = image
        self.codec = make_codec(codec_name, **codec_options)
        height, width = image.shape[:2]
        self.tables = {}
        for scale in downscale:
            small = image if scale == 1 else _resize(image, (max(1, width // scale), max(1, height // scale)))
            # the table is keyed by its pixels' digest; this name only makes cache files readable
            self.tables[scale] = rate_quality_table(self.codec, small, f"{height}x{width}-down{scale}", cache_dir)
        self._psnr: dict[tuple[int, int], float] = {}

    def _upsample(self, decoded: np.ndarray) -> np.ndarray:
        height, width = self.image.shape[:2]
        return decoded if decoded.shape[:2] == (height, width) else _resize(decoded, (width, height), Image.BICUBIC)

    def _rung(self, scale: int, point: CodecPoint) -> Rung:
        key = (scale, point.quality)
        if key not in self._psnr:
            self._psnr[key] = point.psnr_db if scale == 1 else psnr_uint8(self.image, self.reconstruction(Rung(scale, point, 0.0)))
        return Rung(scale, point, self._psnr[key])

    def best_fitting(self, bit_budget: float) -> Rung | None:
        """Of each scale's finest point that fits ``bit_budget`` bits, the one of highest PSNR
        against the original (None if nothing fits at any scale)."""
        candidates = [self._rung(scale, point) for scale, table in self.tables.items()
                      if (point := table.best_fitting(bit_budget)) is not None]
        return max(candidates, key=lambda r: (r.psnr_db, -r.payload_bits)) if candidates else None

    def reconstruction(self, rung: Rung) -> np.ndarray:
        """The receiver's image (uint8 [H, W, 3]) when ``rung`` arrives without error."""
        return self._upsample(self.tables[rung.scale].decoded(rung.point))


def validate_downscale(value, field: str) -> list[int]:
    """``[1]``-style list of distinct positive integers, else ConfigError."""
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16 for v in value):
        raise ConfigError(field, value, "a non-empty list of integer factors from 1 to 16, e.g. [1, 2]")
    return sorted(set(value))


def _resize(image: np.ndarray, size: tuple[int, int], resample=Image.LANCZOS) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, resample))
