"""Baseline JPEG through Pillow (libjpeg), quality 1–95.

Honest bits: Pillow writes a JFIF file (``SOI``, ``APP0`` JFIF header, ``DQT``, ``SOF0``,
``DHT``, ``SOS`` + entropy-coded data, ``EOI``); the Huffman tables are optimized
(``optimize=True``). The payload is that stream with the application and comment
segments (``APPn``, ``COM``) removed: they carry no pixel data (the JFIF ``APP0``
only says "YCbCr, density 1:1", which a decoder assumes for a 3-component baseline
stream anyway). Everything else — quantization and Huffman tables, frame and scan
headers, entropy-coded data, markers — is transmitted and counted;
``container_bits`` = the removed bytes (18 bytes = 144 bits for the JFIF header).
:meth:`JPEGCodec.decode` decodes the payload itself (no container is re-added); the
tests check that it equals the decode of Pillow's full file.

Any size ``H, W >= 1`` works (JPEG pads to whole MCUs internally).

Example
-------
>>> codec = JPEGCodec(chroma="420")
>>> payload, container_bits = codec.encode(img, 75)     # img: uint8 [H, W, 3]
>>> x_hat = codec.decode(payload, img.shape[:2])         # uint8 [H, W, 3]
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from linksim.digital.codecs.table import Codec, check_image
from linksim.errors import ConfigError, ImageError

_SUBSAMPLING = {"444": 0, "420": 2}


def strip_jpeg(data: bytes) -> bytes:
    """Remove ``APPn`` (0xFFE0–0xFFEF) and ``COM`` (0xFFFE) segments from a JPEG stream."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no SOI marker)")
    out, off = [data[:2]], 2
    while off < len(data):
        if data[off] != 0xFF:
            raise ValueError(f"JPEG marker expected at offset {off}")
        marker = data[off + 1]
        if marker == 0xDA:  # SOS: the rest is entropy-coded data (+ EOI); single scan (baseline)
            out.append(data[off:])
            break
        seg_len = struct.unpack_from(">H", data, off + 2)[0]
        seg = data[off:off + 2 + seg_len]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out.append(seg)
        off += 2 + seg_len
    return b"".join(out)


class JPEGCodec(Codec):
    """Baseline JPEG (Pillow / libjpeg) with optimized Huffman tables.

    Parameters
    ----------
    chroma : ``"420"`` | ``"444"``
        Chroma subsampling (default ``"420"``, libjpeg's default).

    Attributes
    ----------
    qualities : tuple[int, ...]
        ``1, 2, …, 95`` (lowest to highest rate).
    """

    name = "jpeg"
    qualities = tuple(range(1, 96))

    def __init__(self, chroma: str = "420"):
        chroma = str(chroma).replace(":", "")
        if chroma not in _SUBSAMPLING:
            raise ConfigError("jpeg.chroma", chroma, '"420" or "444"')
        self.chroma = chroma
        self.options = {"chroma": chroma}

    def encode_file(self, image: np.ndarray, quality: int) -> bytes:
        """The whole JFIF file Pillow writes."""
        image = check_image(image)
        q = self.check_quality(quality)
        buf = io.BytesIO()
        Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=q, optimize=True,
                                           subsampling=_SUBSAMPLING[self.chroma])
        return buf.getvalue()

    def encode(self, image: np.ndarray, quality: int) -> tuple[bytes, int]:
        """Encode at ``quality``; returns ``(payload, container_bits)``."""
        data = self.encode_file(image, quality)
        payload = strip_jpeg(data)
        return payload, 8 * (len(data) - len(payload))

    def decode(self, payload: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Decode a payload into uint8 [H, W, 3]."""
        try:
            with Image.open(io.BytesIO(payload)) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise ImageError(f"JPEG payload of {len(payload)} bytes could not be decoded ({e})") from e
        if shape is not None and tuple(rgb.shape[:2]) != tuple(shape):
            raise ImageError(f"decoded JPEG has size {rgb.shape[:2]}, expected {tuple(shape)}")
        return np.ascontiguousarray(rgb)
