"""Codec base class and the per-image rate–quality table.

A separate scheme gets a bit budget ``k·m·R`` per image and sends the best codec
point whose *payload* fits it. The table of one image holds, per quality of one
codec: payload bits, container bits, the payload itself and the PSNR of the
reconstruction. Each point is encoded **once** per (codec, options, image pixels),
when a budget first needs it, and cached:

- in memory for the life of the process (keyed by ``codec.key`` and the SHA-256 of the
  pixels and shape), and
- on disk under ``cache_dir/<codec.key>/<image_key>-<sha256[:20]>.npz`` when a
  ``cache_dir`` is given. The file holds the payloads, the bit counts and the PSNRs
  (a few MB per image and codec). It is written to a temporary file in the same
  folder and moved in place with ``os.replace``, so a crash never leaves a
  half-written table behind; a cache file that fails to load (or belongs to other
  pixels or another codec) is ignored and rebuilt.

Reconstructions are *not* written to disk (all 52 QPs of a 768×512 image take ≈ 50 MB
even compressed, and ≈ 60 MB of RAM): :meth:`RateQualityTable.decoded` decodes the
stored payload on first use (7–55 ms per point for 768×512 HEVC) and keeps the result
for the life of the table. The payload is what the receiver decodes, and HEVC decoding
is bit-exact by standard, so this is the exact reconstruction the PSNR was measured on.

Example
-------
>>> from linksim.digital.codecs import make_codec, rate_quality_table
>>> table = rate_quality_table(make_codec("bpg", chroma="420"), img, "kodim01", cache_dir)
>>> point = table.best_fitting(bit_budget=0.5 * img.shape[0] * img.shape[1])
>>> x_hat = table.decoded(point) if point is not None else None   # uint8 [H, W, 3]
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from linksim.errors import ImageError


@dataclass(frozen=True)
class CodecPoint:
    """One entry of an image's rate–quality table.

    Attributes
    ----------
    quality : int
        Codec setting: the HEVC QP for ``bpg`` (0–51, lower = better), the quality
        for ``jpeg`` (1–95, higher = better).
    payload_bits : int
        Bits that cross the link (``8 * len(payload)``).
    container_bits : int
        File bits not transmitted (container fields the receiver is assumed to know).
    payload : bytes
        The transmitted bytes (HEVC Annex-B stream for bpg, stripped JPEG stream for jpeg).
    psnr_db : float
        PSNR in dB of the reconstruction vs the original (8-bit, peak 255, all
        three channels); ``inf`` when identical.
    """

    quality: int
    payload_bits: int
    container_bits: int
    payload: bytes
    psnr_db: float

    def __repr__(self) -> str:  # keep the payload out of reprs
        return (f"CodecPoint(quality={self.quality}, payload_bits={self.payload_bits}, "
                f"container_bits={self.container_bits}, psnr_db={self.psnr_db:.3f})")


def check_image(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Validate a codec input: uint8 array of shape [H, W, 3], H, W >= 1 (C-contiguous copy)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        desc = (f"{type(image).__name__} dtype={getattr(image, 'dtype', None)} "
                f"shape={getattr(image, 'shape', None)}")
        raise ImageError(f"{where}: got {desc} — expected a uint8 array of shape [H, W, 3] "
                         f"with H, W >= 1")
    return np.ascontiguousarray(image)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (peak 255); ``inf`` when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(255.0 ** 2 / mse))


class Codec:
    """An image codec with a discrete set of qualities.

    Subclasses set :attr:`name`, :attr:`options` and :attr:`qualities` and implement
    :meth:`encode` and :meth:`decode`.

    Attributes
    ----------
    name : str
        ``"bpg"`` or ``"jpeg"``.
    options : dict
        The options the codec was made with (part of the cache key).
    qualities : tuple[int, ...]
        Every quality, ordered from lowest to highest rate.
    """

    name: str = ""
    options: dict = {}
    qualities: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """Stable identifier of codec + options, e.g. ``jpeg-chroma420`` (used for caching); a codec
        may add a digest of its fixed encoder settings (``bpg`` does)."""
        opts = "-".join(f"{k}{v}" for k, v in sorted(self.options.items()))
        return f"{self.name}-{opts}" if opts else self.name

    def encode(self, image: np.ndarray, quality: int) -> tuple[bytes, int]:
        """Encode ``image`` (uint8 [H, W, 3]) at ``quality``.

        Returns ``(payload, container_bits)``: the bytes that cross the link and the
        number of file bits that do not.
        """
        raise NotImplementedError

    def decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        """Decode a payload into a uint8 [H, W, 3] image of ``shape`` = (H, W)."""
        raise NotImplementedError

    def check_quality(self, quality: int) -> int:
        from linksim.errors import ConfigError
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
                or int(quality) not in self.qualities:
            raise ConfigError(f"{self.name}.quality", quality,
                              f"an integer in {min(self.qualities)}..{max(self.qualities)}")
        return int(quality)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"


class RateQualityTable:
    """The codec points of one image, encoded on demand and kept.

    A point (one codec quality) is encoded the first time anything asks for it — by
    :meth:`best_fitting`, :meth:`point` or :meth:`complete` — and never again: it stays in
    memory and, with a cache folder, on disk. :meth:`best_fitting` bisects the quality
    ladder (payload size falls monotonically with coarser quantization), so a budget
    costs about log2(52) ≈ 6 encodes the first time and nothing after; the expensive fine
    qualities (an HEVC encode at QP 0 is ~5× slower than at QP 51) are only encoded when
    a budget reaches them.

    Attributes
    ----------
    codec : Codec
    codec_key : str
    image_key : str
    shape : tuple[int, int]
        (H, W) of the image.
    points : list[CodecPoint]
        The points encoded so far, sorted by ascending ``payload_bits``
        (call :meth:`complete` first for the whole table).
    """

    def __init__(self, codec: Codec, image_key: str, shape: tuple[int, int],
                 points: Sequence[CodecPoint], image: np.ndarray | None = None, on_new_point=None):
        self.codec, self.codec_key = codec, codec.key
        self.image_key, self.shape = image_key, tuple(int(v) for v in shape)
        self._points: dict[int, CodecPoint] = {p.quality: p for p in points}
        self._image, self._on_new_point = image, on_new_point
        self._decoded: dict[int, np.ndarray] = {}

    @property
    def points(self) -> list[CodecPoint]:
        return sorted(self._points.values(), key=lambda p: (p.payload_bits, -p.psnr_db))

    def point(self, quality: int) -> CodecPoint:
        """The point of a codec quality, encoded now if it was not yet."""
        quality = self.codec.check_quality(quality)
        if quality not in self._points:
            if self._image is None:
                raise KeyError(quality)
            payload, container_bits = self.codec.encode(self._image, quality)
            rec = self.codec.decode(payload, self.shape)  # the receiver's decode of the payload alone
            self._points[quality] = CodecPoint(quality, 8 * len(payload), int(container_bits), payload,
                                               psnr_uint8(self._image, rec))
            if self._on_new_point is not None:
                self._on_new_point(self)
        return self._points[quality]

    def complete(self) -> "RateQualityTable":
        """Encode every quality (for rate–quality curves); returns the table."""
        for q in self.codec.qualities:
            self.point(q)
        return self

    def best_fitting(self, bit_budget: float) -> CodecPoint | None:
        """The finest quality whose ``payload_bits <= bit_budget``, or None if none fits.

        Bisection over ``codec.qualities`` (ordered from lowest to highest rate), which
        assumes the payload grows with quality — true of x265 at fixed QP and of JPEG up
        to rare one-step inversions of a few bytes. The answer depends only on the budget,
        never on which points earlier calls happened to encode.
        """
        qualities = self.codec.qualities
        if self.point(qualities[0]).payload_bits > bit_budget:
            return None
        low, high = 0, len(qualities) - 1  # invariant: qualities[low] fits
        if self.point(qualities[high]).payload_bits <= bit_budget:
            return self.point(qualities[high])
        while high - low > 1:
            middle = (low + high) // 2
            if self.point(qualities[middle]).payload_bits <= bit_budget:
                low = middle
            else:
                high = middle
        return self.point(qualities[low])

    def decoded(self, point: CodecPoint | int) -> np.ndarray:
        """Reconstruction of a point (or a quality): uint8 [H, W, 3], read-only.

        Decoded from the point's payload on first use, then kept.
        """
        p = self.point(int(point)) if isinstance(point, (int, np.integer)) else point
        rec = self._decoded.get(p.quality)
        if rec is None:
            rec = self.codec.decode(p.payload, self.shape)
            rec.setflags(write=False)
            self._decoded[p.quality] = rec
        return rec

    def __len__(self) -> int:
        return len(self._points)

    def __repr__(self) -> str:
        return f"RateQualityTable({self.codec_key}, {self.image_key}, {len(self)} of {len(self.codec.qualities)} points)"


_MEMORY: dict[tuple[str, str], RateQualityTable] = {}


def clear_memory_cache() -> None:
    """Forget the in-process tables (the disk cache stays)."""
    _MEMORY.clear()


def _image_digest(image: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _cache_path(cache_dir: Path, codec_key: str, image_key: str, digest: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(image_key))[:80] or "image"
    return Path(cache_dir) / codec_key / f"{safe}-{digest[:20]}.npz"


def _save(path: Path, table: RateQualityTable, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = sorted(table.points, key=lambda p: p.quality)
    payload_lens = np.array([len(p.payload) for p in pts], dtype=np.int64)
    blob = np.frombuffer(b"".join(p.payload for p in pts), dtype=np.uint8)
    arrays = dict(
        digest=np.array(digest), codec_key=np.array(table.codec_key),
        shape=np.array(table.shape, dtype=np.int64),
        quality=np.array([p.quality for p in pts], dtype=np.int64),
        payload_bits=np.array([p.payload_bits for p in pts], dtype=np.int64),
        container_bits=np.array([p.container_bits for p in pts], dtype=np.int64),
        psnr_db=np.array([p.psnr_db for p in pts], dtype=np.float64),
        payload_lens=payload_lens, payload_blob=blob,
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load(path: Path, codec: Codec, digest: str) -> list[CodecPoint] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["digest"]) != digest or str(z["codec_key"]) != codec.key:
                return None
            blob = z["payload_blob"].tobytes()
            ends = np.cumsum(z["payload_lens"])
            starts = ends - z["payload_lens"]
            points = [CodecPoint(int(q), int(z["payload_bits"][i]), int(z["container_bits"][i]),
                                 blob[int(starts[i]):int(ends[i])], float(z["psnr_db"][i]))
                      for i, q in enumerate(z["quality"])]
    except Exception:  # unreadable / stale cache file: rebuild
        return None
    if not set(p.quality for p in points) <= set(codec.qualities):
        return None
    return points


def rate_quality_table(codec: Codec, image: np.ndarray, image_key: str,
                       cache_dir: Path | str | None = None) -> RateQualityTable:
    """Rate–quality table of one image for one codec (computed once, cached).

    Parameters
    ----------
    codec : Codec
        From :func:`make_codec`.
    image : np.ndarray, uint8, [H, W, 3]
    image_key : str
        A readable name for the image (used in the cache file name only; the
        cache is keyed by the pixels' SHA-256).
    cache_dir : Path or None
        Folder for the on-disk cache; ``None`` keeps the table in memory only.

    Returns
    -------
    RateQualityTable
        Lazy: points are encoded when first needed (see :class:`RateQualityTable`); the
        points already on disk are loaded, new ones are added to the cache file.
    """
    image = check_image(image, f"image {image_key!r}")
    digest = _image_digest(image)
    mem_key = (codec.key, digest)
    if mem_key in _MEMORY:
        return _MEMORY[mem_key]
    path = _cache_path(Path(cache_dir), codec.key, image_key, digest) if cache_dir is not None else None
    known = (_load(path, codec, digest) if path is not None and path.exists() else None) or []
    save = (lambda table: _save(path, table, digest)) if path is not None else None
    table = RateQualityTable(codec, image_key, image.shape[:2], known, image=image, on_new_point=save)
    _MEMORY[mem_key] = table
    return table
