"""BPG-like image codec: HEVC intra (x265) through pillow-heif / libheif.

Encoder settings
----------------
Every point is coded at a **fixed QP** (constant-QP rate control, as BPG does).
libheif's x265 plugin starts from ``x265_param_default_preset(preset, tune)``, then
*forces* a few options of its own (among them ``psy-rd=1.0``, ``psy-rdoq=1.0``,
``aq-mode=1``, ``rskip=0`` and the CTU size), and only then hands every encoder parameter
named ``x265:<opt>`` to ``x265_param_parse``. The codec therefore passes
(:data:`ENCODER_SETTINGS`, plus ``x265:qp`` per call):

- ``x265:qp=<QP>``: switches x265 to CQP rate control at that QP (x265 then also turns
  adaptive quantization and cu-tree off, so libheif's ``aq-mode=1`` has no effect: the
  stream is byte-identical with ``aq-mode=0``).
- ``x265:ipratio=1``: without it x265 codes an I-slice at ``QP − 6·log2(1.4) ≈ QP − 3``.
  (libbpg keeps ipratio 1.4 and adds 1 to the QP: ``bpgenc -q q`` codes the slice at
  QP ``q − 2``. This only relabels the QP ladder; it changes no rate–distortion trade-off.)
- ``x265:psy-rd=0`` and ``x265:psy-rdoq=0``: psycho-visual rate–distortion optimization
  off. libbpg calls ``x265_param_default_preset(p, preset, "ssim")``, and x265's ``ssim``
  tune sets both to 0; libheif's plugin sets both back to 1.0 after the tune. psy-rd
  keeps texture energy at the cost of squared error: on Kodak (24 images, 4:4:4) it cost
  0.5 dB of RGB PSNR at equal rate against libbpg's published curve (0.48–0.65 dB at
  libbpg's rates from 0.068 to 3.06 bpp; psy-rd alone does it, psy-rdoq alone changes
  < 0.01 dB). With both off the curve matches libbpg's: −0.05 to +0.04 dB at those rates,
  mean +0.01 dB (``benchmarks/bpg_vs_libbpg.py``). In 4:2:0 the gain is 0.03 dB.
- ``tune=ssim``: libbpg's tune. Under CQP it only matters through psy-rd/psy-rdoq (set
  above) and AQ (off): the stream is byte-identical with ``tune=psnr``. Pinned so that a
  change of libheif's default cannot change the stream.
- ``preset=slow`` and ``tu-intra-depth=2``: libheif's defaults, pinned. libbpg's default
  (``-m 8``) is ``placebo``, whose intra TU depth is 4 (libheif overrides the preset's
  depth with its own ``tu-intra-depth``, so both must be given). Measured on Kodak 4:4:4:
  placebo + depth 4 gains 0.015 dB at equal rate for 30 % more encoding time; libheif's
  ``complexity=70`` (rd 6, rd-refine, cu-lossless) 0.004 dB for 75 % more. Not taken.
  ``rdoq-level`` stays 2 (the ``slow`` and ``placebo`` value; levels 1 and 0 lose 0.24 and 0.18 dB),
  ``ctu`` stays 64 (x265's and libbpg's default; 32 loses 0.04 dB).

The libheif ``quality`` (which maps to a CRF) is not used. :func:`slice_qp` parses the
produced SPS/PPS/slice header and returns the slice QP actually written into the
bitstream (``26 + init_qp_minus26 + slice_qp_delta``) together with PPS
``cu_qp_delta_enabled_flag``; the tests check that it equals the requested QP for
every QP and that no CU-level QP change is enabled. The profile is Main Still Picture
(8 bit; format range extensions profile for 4:4:4). QP runs 0–51; QP 0 is *not* lossless (no
transquant bypass). The encoder is deterministic: the same pixels and QP give the same
bytes. The settings are part of :attr:`BPGCodec.key`, the rate–quality tables' cache
key, so a table cached under other settings is never reused.

Colour: libheif converts RGB → YCbCr with the BT.601 matrix in full range (the ``colr``
nclx pillow-heif writes: matrix 6, full-range flag 1), which is libbpg's default
(``-c ycbcr``, full range) and 8-bit libbpg's conversion: in 4:4:4 an x265-lossless
round trip gives the PSNR of an ideal full-range BT.601 8-bit round trip to within
0.01 dB (52.3–53.9 dB on Kodak), so decoding uses the same matrix and range. The 8-bit
conversion is itself lossy. In 4:2:0 libheif averages 2×2 chroma on encode and
repeats each chroma sample 2×2 on decode (nearest neighbour), a round trip of
39.9–48.0 dB on Kodak, mean 43.9 (bilinear upsampling would give a mean of 45.1 dB;
pillow-heif offers no choice and no access to the decoded YCbCr planes).

Chroma: ``"444"`` or ``"420"`` (libheif's ``chroma`` option). Note that at high QP
(≳ 30) a 4:2:0 stream can be *larger* than a 4:4:4 one: HEVC maps the chroma QP of
4:2:0 through a table that lowers it below the luma QP, whereas 4:4:4 uses the luma QP.

Honest bits: payload vs container
---------------------------------
libheif writes an HEIF file: ``ftyp``, ``meta`` (``hdlr``, ``iloc``, ``iinf``, ``pitm``,
``iprp``/``ipco`` with ``hvcC``, ``colr``, ``ispe``, ``pixi`` and, for small or odd
sizes, ``clap``) and ``mdat``. The codec parses these boxes and takes

- the parameter-set NAL units (VPS, SPS, PPS) from the ``hvcC`` arrays, and
- the coded-slice NAL units from the primary item's extents in ``mdat``
  (4-byte length-prefixed),

and emits them as one HEVC **Annex-B elementary stream** (each NAL unit preceded by
the 4-byte start code ``00 00 00 01``): that stream is the payload, the bits that cross
the link (``payload_bits = 8·len(payload)``, start codes included: a raw link needs
the NAL units delimited). ``container_bits = 8·len(heif_file) − payload_bits`` are
the remaining box bytes (≈ 3 kbit), reported but not transmitted: the receiver is
assumed to know the fixed container fields (brand, colour profile, item layout) and
the image size. :meth:`BPGCodec.decode` really does rebuild an HEIF file around a
received payload (hvcC header from the SPS, ``ispe`` = coded size, fixed ``colr``
nclx = BT.709 primaries / sRGB transfer / BT.601 matrix / full range, as written by
pillow-heif) and crops the top-left ``H × W`` (what the ``clap`` box would do); the
tests check that this reproduces libheif's own decode of the original file exactly.
In a simulation a frame received without error therefore reproduces the
transmitter's reconstruction exactly, so the receiver output on success is the codec
reconstruction stored in the rate–quality table.

Sizes
-----
Any size ``H, W >= 1`` is accepted: libheif pads the picture (edge replication) to
even dimensions of at least 64 before x265 (x265 cannot code pictures smaller than
one CTU; libheif lowers the CTU to 32/16 for small pictures), and crops back on
decode. The padding is coded and therefore counted in the payload (a 8×8 image
costs the bits of a 64×64 picture). Odd sizes work in 4:2:0 as well.

Example
-------
>>> codec = BPGCodec(chroma="420")
>>> payload, container_bits = codec.encode(img, 32)      # img: uint8 [H, W, 3]
>>> x_hat = codec.decode(payload, img.shape[:2])          # uint8 [H, W, 3]
>>> slice_qp(payload)
(32, False)
"""

from __future__ import annotations

import hashlib
import io
import json
import struct

import numpy as np

from linksim.digital.codecs.table import Codec, check_image
from linksim.errors import ConfigError, ImageError

START_CODE = b"\x00\x00\x00\x01"
_NAL_VPS, _NAL_SPS, _NAL_PPS = 32, 33, 34
#: ``colr`` nclx written by pillow-heif by default: primaries 1, transfer 13, matrix 6, full range.
_NCLX = struct.pack(">4sHHHB", b"nclx", 1, 13, 6, 0x80)

#: Encoder parameters of every encode (pillow-heif ``enc_params``), besides ``x265:qp``.
#: Keys without a prefix are libheif x265-plugin parameters, ``x265:<opt>`` ones go to
#: ``x265_param_parse`` after libheif's own settings. Why each: see the module docstring.
ENCODER_SETTINGS: dict[str, str] = {
    "preset": "slow",         # libheif's default, pinned (libbpg: placebo, +0.015 dB for +30 % time)
    "tune": "ssim",           # libbpg's tune; under CQP identical to "psnr" once psy-rd/psy-rdoq are 0
    "tu-intra-depth": "2",    # libheif's default, pinned (it overrides the preset's value)
    "x265:ipratio": "1",      # the I slice is coded at the requested QP, not QP − 3
    "x265:psy-rd": "0",       # as libbpg (x265 tune ssim); libheif forces 1.0: −0.5 dB at equal rate
    "x265:psy-rdoq": "0",     # as libbpg (x265 tune ssim); libheif forces 1.0
}


def settings_tag(settings: dict[str, str]) -> str:
    """Short digest of encoder settings (8 hex digits), part of :attr:`BPGCodec.key`."""
    blob = json.dumps(sorted((str(k), str(v)) for k, v in settings.items())).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def _heif():
    try:
        import pillow_heif
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise ImportError("the bpg codec needs pillow-heif (pip install pillow-heif)") from e
    return pillow_heif


# ----------------------------------------------------------------------------- ISO-BMFF

def _iter_boxes(buf: bytes, start: int, end: int):
    """Yield ``(type, payload_start, box_end)`` for the boxes in ``buf[start:end]``."""
    off = start
    while off + 8 <= end:
        size, typ = struct.unpack_from(">I4s", buf, off)
        hdr = 8
        if size == 1:
            size = struct.unpack_from(">Q", buf, off + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr or off + size > end:
            raise ValueError(f"corrupt ISO-BMFF box {typ!r} at offset {off}")
        yield typ.decode("latin-1"), off + hdr, off + size
        off += size


def _child(buf: bytes, start: int, end: int, typ: str) -> tuple[int, int]:
    for t, s, e in _iter_boxes(buf, start, end):
        if t == typ:
            return s, e
    raise ValueError(f"HEIF box {typ!r} not found")


def _read_uint(buf: bytes, off: int, n: int) -> tuple[int, int]:
    return (int.from_bytes(buf[off:off + n], "big") if n else 0), off + n


def split_heif(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """Parse an HEIF file of one HEVC image.

    Returns ``(parameter_set_nals, slice_nals)``: the NAL units (without start codes
    or length prefixes) of the ``hvcC`` arrays and of the primary item in ``mdat``.
    """
    ms, me = _child(data, 0, len(data), "meta")
    ms += 4  # FullBox version/flags
    ps, _ = _child(data, ms, me, "pitm")
    primary = struct.unpack_from(">H", data, ps + 4)[0] if data[ps] == 0 else struct.unpack_from(">I", data, ps + 4)[0]
    # item types
    ist, ie = _child(data, ms, me, "iinf")
    n_items = struct.unpack_from(">H" if data[ist] == 0 else ">I", data, ist + 4)[0]
    if n_items != 1:
        raise ValueError(f"expected an HEIF file with one image item, got {n_items} items")
    # hvcC
    ip, ipe = _child(data, ms, me, "iprp")
    cs, ce = _child(data, ip, ipe, "ipco")
    hs, he = _child(data, cs, ce, "hvcC")
    length_size = (data[hs + 21] & 3) + 1
    n_arrays = data[hs + 22]
    off, params = hs + 23, []
    for _ in range(n_arrays):
        n_nalus = struct.unpack_from(">H", data, off + 1)[0]
        off += 3
        for _ in range(n_nalus):
            n = struct.unpack_from(">H", data, off)[0]
            params.append(bytes(data[off + 2:off + 2 + n]))
            off += 2 + n
    # iloc -> extents of the primary item
    ls, le = _child(data, ms, me, "iloc")
    version = data[ls]
    off = ls + 4
    offset_size, length_size_il = data[off] >> 4, data[off] & 15
    base_offset_size, index_size = data[off + 1] >> 4, (data[off + 1] & 15 if version in (1, 2) else 0)
    off += 2
    count, off = _read_uint(data, off, 2 if version < 2 else 4)
    extents = None
    for _ in range(count):
        item_id, off = _read_uint(data, off, 2 if version < 2 else 4)
        method = 0
        if version in (1, 2):
            method, off = _read_uint(data, off, 2)
            method &= 15
        off += 2  # data_reference_index
        base, off = _read_uint(data, off, base_offset_size)
        n_ext, off = _read_uint(data, off, 2)
        ext = []
        for _ in range(n_ext):
            if version in (1, 2) and index_size:
                off += index_size
            eo, off = _read_uint(data, off, offset_size)
            el, off = _read_uint(data, off, length_size_il)
            ext.append((base + eo, el))
        if item_id == primary:
            if method != 0:
                raise ValueError("HEIF item stored with an unsupported construction method")
            extents = ext
    if extents is None:
        raise ValueError("primary HEIF item has no location")
    stream = b"".join(data[o:o + n] for o, n in extents)
    slices, off = [], 0
    while off < len(stream):
        n = int.from_bytes(stream[off:off + length_size], "big")
        slices.append(bytes(stream[off + length_size:off + length_size + n]))
        off += length_size + n
    return params, slices


def _box(typ: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), typ) + body


def _full_box(typ: bytes, version: int, flags: int, body: bytes) -> bytes:
    return _box(typ, struct.pack(">I", (version << 24) | flags) + body)


def build_heif(nals: list[bytes]) -> bytes:
    """Wrap HEVC NAL units (VPS, SPS, PPS, slices) into a minimal single-image HEIF file.

    Only fields the receiver is assumed to know are added (brands, item layout, the
    fixed ``colr`` profile); the ``hvcC`` header and ``ispe`` come from the SPS.
    """
    params = [n for n in nals if _nal_type(n) in (_NAL_VPS, _NAL_SPS, _NAL_PPS)]
    slices = [n for n in nals if _nal_type(n) not in (_NAL_VPS, _NAL_SPS, _NAL_PPS)]
    sps_nal = next((n for n in params if _nal_type(n) == _NAL_SPS), None)
    if sps_nal is None or not slices:
        raise ValueError("HEVC payload without SPS or without coded slices")
    sps = parse_sps(sps_nal)
    rb = sps["rbsp"]
    ptl = rb[1:13]  # general profile/tier/level, byte-aligned after the first SPS byte
    hvcc = bytes([1]) + ptl[:1] + ptl[1:5] + ptl[5:11] + ptl[11:12]
    hvcc += struct.pack(">HBBBBHB", 0xF000, 0xFC, 0xFC | sps["chroma_format_idc"],
                        0xF8 | (sps["bit_depth_luma"] - 8), 0xF8 | (sps["bit_depth_chroma"] - 8),
                        0, (1 << 3) | ((rb[0] & 1) << 2) | 3)
    by_type: dict[int, list[bytes]] = {}
    for n in params:
        by_type.setdefault(_nal_type(n), []).append(n)
    hvcc += bytes([len(by_type)])
    for t in sorted(by_type):
        hvcc += struct.pack(">BH", 0x40 | t, len(by_type[t]))
        for n in by_type[t]:
            hvcc += struct.pack(">H", len(n)) + n
    ipco = _box(b"ipco", _box(b"hvcC", hvcc) + _box(b"colr", _NCLX)
                + _full_box(b"ispe", 0, 0, struct.pack(">II", sps["width"], sps["height"]))
                + _full_box(b"pixi", 0, 0, bytes([3, sps["bit_depth_luma"], sps["bit_depth_chroma"],
                                                  sps["bit_depth_chroma"]])))
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">IHB4B", 1, 1, 4, 0x81, 2, 3, 4))
    mdat_body = b"".join(struct.pack(">I", len(n)) + n for n in slices)
    ftyp = _box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I", 0) + b"pict" + bytes(12) + b"\x00")
    iinf = _full_box(b"iinf", 0, 0, struct.pack(">H", 1)
                     + _full_box(b"infe", 2, 0, struct.pack(">HH", 1, 0) + b"hvc1" + b"\x00"))
    pitm = _full_box(b"pitm", 0, 0, struct.pack(">H", 1))

    def meta_with(offset: int) -> bytes:
        iloc = _full_box(b"iloc", 0, 0, bytes([0x44, 0x40]) + struct.pack(">HHHIHII", 1, 1, 0, offset, 1, 0,
                                                                             len(mdat_body)))
        return _full_box(b"meta", 0, 0, hdlr + iloc + iinf + pitm + _box(b"iprp", ipco + ipma))

    head_len = len(ftyp) + len(meta_with(0)) + 8
    return ftyp + meta_with(head_len) + _box(b"mdat", mdat_body)


# ----------------------------------------------------------------------------- HEVC bits

def _nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def split_annexb(stream: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units (start codes removed)."""
    nals, i, n = [], 0, len(stream)
    starts = []
    while True:
        j = stream.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = stream[s:e]
        while nal.endswith(b"\x00") and k + 1 < len(starts):  # leading zero_byte of the next start code
            nal = nal[:-1]
        if nal:
            nals.append(bytes(nal))
    return nals


def _rbsp(nal: bytes) -> bytes:
    """NAL payload after the 2-byte header with emulation-prevention bytes removed."""
    out, zeros = bytearray(), 0
    for b in nal[2:]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def parse_sps(nal: bytes) -> dict:
    """Fields of an HEVC SPS needed here (size, chroma format, bit depths, SAO flag)."""
    rb = _rbsp(nal)
    r = _Bits(rb)
    r.u(4)
    max_sub = r.u(3)
    r.u(1)
    r.u(88)  # general profile
    r.u(8)   # general level
    sub_prof, sub_lvl = [], []
    for _ in range(max_sub):
        sub_prof.append(r.u(1))
        sub_lvl.append(r.u(1))
    if max_sub > 0:
        for _ in range(max_sub, 8):
            r.u(2)
    for i in range(max_sub):
        if sub_prof[i]:
            r.u(88)
        if sub_lvl[i]:
            r.u(8)
    r.ue()
    chroma = r.ue()
    sep = r.u(1) if chroma == 3 else 0
    width, height = r.ue(), r.ue()
    sub_w = 2 if chroma in (1, 2) else 1
    sub_h = 2 if chroma == 1 else 1
    if r.u(1):  # conformance window
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    bd_luma, bd_chroma = r.ue() + 8, r.ue() + 8
    r.ue()
    ordering = r.u(1)
    for _ in range(0 if ordering else max_sub, max_sub + 1):
        r.ue(); r.ue(); r.ue()
    for _ in range(6):
        r.ue()
    if r.u(1) and r.u(1):
        raise ValueError("SPS with scaling-list data is not supported by this parser")
    r.u(1)  # amp
    sao = r.u(1)
    return dict(rbsp=rb, chroma_format_idc=chroma, separate_colour_plane=sep, width=width, height=height,
                bit_depth_luma=bd_luma, bit_depth_chroma=bd_chroma, sao=sao)


def slice_qp(payload: bytes) -> tuple[int, bool]:
    """QP written in the first slice header of an Annex-B payload.

    Returns ``(SliceQpY, cu_qp_delta_enabled)`` where ``SliceQpY = 26 + init_qp_minus26
    + slice_qp_delta`` (H.265 §7.4.7.1). Only IDR I-slices (what a still image is) are
    parsed.
    """
    nals = split_annexb(payload)
    sps = parse_sps(next(n for n in nals if _nal_type(n) == _NAL_SPS))
    p = _Bits(_rbsp(next(n for n in nals if _nal_type(n) == _NAL_PPS)))
    p.ue(); p.ue()
    p.u(1)
    output_flag_present = p.u(1)
    extra_bits = p.u(3)
    p.u(1); p.u(1)
    p.ue(); p.ue()
    init_qp = 26 + p.se()
    p.u(1); p.u(1)
    cu_qp_delta = bool(p.u(1))
    sl = next(n for n in nals if _nal_type(n) < 32)
    t = _nal_type(sl)
    if t not in (19, 20):
        raise ValueError(f"slice NAL type {t} is not an IDR picture")
    s = _Bits(_rbsp(sl))
    if not s.u(1):
        raise ValueError("first slice is not the first slice segment of the picture")
    s.u(1)  # no_output_of_prior_pics_flag
    s.ue()
    s.u(extra_bits)
    slice_type = s.ue()
    if slice_type != 2:
        raise ValueError(f"slice type {slice_type} is not I")
    if output_flag_present:
        s.u(1)
    if sps["separate_colour_plane"]:
        s.u(2)
    if sps["sao"]:
        s.u(1)
        if sps["chroma_format_idc"] != 0 and not sps["separate_colour_plane"]:
            s.u(1)
    return init_qp + s.se(), cu_qp_delta


# ----------------------------------------------------------------------------- the codec

class BPGCodec(Codec):
    """HEVC intra at fixed QP (BPG-like), 8-bit, through pillow-heif.

    Parameters
    ----------
    chroma : ``"444"`` | ``"420"``
        Chroma sampling (default ``"444"``, as BPG's default).

    Attributes
    ----------
    qualities : tuple[int, ...]
        QPs ``51, 50, …, 0`` (lowest to highest rate).
    encoder_settings : dict[str, str]
        The pillow-heif ``enc_params`` of every encode besides ``x265:qp``
        (:data:`ENCODER_SETTINGS`; an instance may be given others for experiments: the
        :attr:`key` follows them).

    Input ``image``: uint8 [H, W, 3] RGB, any H, W >= 1. Output of :meth:`decode`:
    uint8 [H, W, 3].
    """

    name = "bpg"
    qualities = tuple(range(51, -1, -1))

    def __init__(self, chroma: str = "444"):
        chroma = str(chroma).replace(":", "")
        if chroma not in ("444", "420"):
            raise ConfigError("bpg.chroma", chroma, '"444" or "420"')
        self.chroma = chroma
        self.options = {"chroma": chroma}
        self.encoder_settings = dict(ENCODER_SETTINGS)

    @property
    def key(self) -> str:
        """Cache key: codec, options and a digest of the encoder settings, e.g.
        ``bpg-chroma420-x265-1a2b3c4d``; tables cached under other settings are not reused."""
        return f"{super().key}-x265-{settings_tag(self.encoder_settings)}"

    def encode_file(self, image: np.ndarray, quality: int) -> bytes:
        """The whole HEIF file libheif writes for ``image`` at QP ``quality``."""
        image = check_image(image)
        q = self.check_quality(quality)
        ph = _heif()
        h, w = image.shape[:2]
        heif = ph.from_bytes("RGB", (w, h), image.tobytes())
        buf = io.BytesIO()
        try:
            heif.save(buf, format="HEIF", tile_size=0, chroma=self.chroma, save_nclx_profile=True,
                      enc_params={**self.encoder_settings, "x265:qp": str(q)})
        except Exception as e:
            raise ImageError(f"image of size {h}x{w}: HEVC encoding failed ({e})") from e
        return buf.getvalue()

    def encode(self, image: np.ndarray, quality: int) -> tuple[bytes, int]:
        """Encode at QP ``quality``; returns ``(annexb_payload, container_bits)``."""
        data = self.encode_file(image, quality)
        params, slices = split_heif(data)
        payload = b"".join(START_CODE + n for n in params + slices)
        return payload, 8 * len(data) - 8 * len(payload)

    def decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        """Decode an Annex-B payload into uint8 [H, W, 3] (``shape`` = (H, W))."""
        return self.decode_file(build_heif(split_annexb(payload)), shape)

    @staticmethod
    def decode_file(data: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Decode an HEIF file with libheif (libde265); crop to ``shape`` if given."""
        ph = _heif()
        heif = ph.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        rgb = np.asarray(heif[0].to_pillow().convert("RGB"))
        if shape is not None:
            h, w = shape
            if rgb.shape[0] < h or rgb.shape[1] < w:
                raise ImageError(f"decoded HEVC picture {rgb.shape[:2]} is smaller than the image {shape}")
            rgb = rgb[:h, :w]
        return np.ascontiguousarray(rgb)
