"""Image loading: sources, input conversions and errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from linksim.data import SAMPLE_NAMES, ImageItem, load_images, read_image, square_resize, to_tensor, to_uint8
from linksim.errors import ConfigError, ImageError

RNG = np.random.default_rng(0)


def _rgb(h=6, w=9):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16(arr: np.ndarray) -> bytes:
    """16-bit RGB/RGBA PNG with the five filter types used in turn (rows 0, 1, 2, ...)."""
    h, w, c = arr.shape
    bpp = 2 * c
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, w * bpp).astype(np.int64)
    out, prev = [], np.zeros(w * bpp, np.int64)
    for y in range(h):
        x, f = rows[y], y % 5
        a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        cc = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if f == 0:
            pred = np.zeros_like(x)
        elif f == 1:
            pred = a
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (a + prev) // 2
        else:
            p = a + prev - cc
            pa, pb, pc = abs(p - a), abs(p - prev), abs(p - cc)
            pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, prev, cc))
        out.append(bytes([f]) + ((x - pred) % 256).astype(np.uint8).tobytes())
        prev = x

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(out)))
            + chunk(b"IEND", b""))


def _r16(a):
    return ((a.astype(np.int64) + 128) // 257).astype(np.uint8)


def test_samples():
    items = load_images("samples")
    assert [it.id for it in items] == list(SAMPLE_NAMES)
    for it in items:
        assert it.pixels.dtype == np.uint8 and it.pixels.ndim == 3 and it.pixels.shape[2] == 3
        assert min(it.pixels.shape[:2]) >= 256
    assert [it.id for it in load_images("samples", limit=2)] == list(SAMPLE_NAMES[:2])


def test_folder_sorted_limit_and_list(tmp_path):
    imgs = {n: _rgb() for n in ["b", "a", "c"]}
    for n, a in imgs.items():
        Image.fromarray(a).save(tmp_path / f"{n}.png")
    (tmp_path / "README.txt").write_text("not an image, skipped")
    items = load_images(tmp_path)
    assert [it.id for it in items] == ["a", "b", "c"]
    assert all(np.array_equal(it.pixels, imgs[it.id]) for it in items)
    assert [it.id for it in load_images(str(tmp_path), limit=2)] == ["a", "b"]
    assert [it.id for it in load_images([tmp_path / "c.png", tmp_path / "a.png"])] == ["c", "a"]
    assert load_images(tmp_path / "b.png")[0].id == "b"
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(imgs["a"]).save(sub / "a.png")
    assert [it.id for it in load_images([tmp_path / "a.png", sub / "a.png"])] == ["a", "a-2"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_limit(bad):
    with pytest.raises(ConfigError, match="limit"):
        load_images("samples", limit=bad)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(ConfigError, match="does-not-exist"):
        load_images(tmp_path / "does-not-exist")
    with pytest.raises(ConfigError, match=r"images: got .*has none"):
        load_images(tmp_path)
    with pytest.raises(ConfigError, match=r"images\[0\]"):
        load_images([tmp_path / "nope.png"])
    with pytest.raises(ConfigError, match="non-empty"):
        load_images([])
    with pytest.raises(ConfigError, match="images"):
        load_images(42)


def test_corrupt_and_text_files(tmp_path):
    (tmp_path / "text.png").write_text("hello, I am not a PNG")
    with pytest.raises(ImageError, match=r"text\.png.*cannot be decoded.*png"):
        load_images(tmp_path / "text.png")
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"trunc\.png"):
        load_images([tmp_path / "trunc.png"])
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[:200])
    with pytest.raises(ImageError, match=r"trunc\.jpg"):
        load_images(tmp_path / "trunc.jpg")


def test_grayscale_is_replicated(tmp_path):
    g = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    px = read_image(tmp_path / "g.png")
    assert px.shape == (5, 7, 3) and all(np.array_equal(px[..., c], g) for c in range(3))
    Image.fromarray(g > 128).save(tmp_path / "bw.png")
    assert set(np.unique(read_image(tmp_path / "bw.png"))) <= {0, 255}


def test_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [200, 100, 0]
    rgba[0, :, 3] = 255  # opaque
    rgba[1, 0, 3] = 0  # transparent -> white
    rgba[1, 1, 3] = 128
    rgba[1, 2, 3] = 51
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    px = read_image(tmp_path / "a.png").astype(int)
    assert (px[0] == [200, 100, 0]).all()
    assert (px[1, 0] == 255).all()
    expect = np.rint((np.array([200, 100, 0]) * 128 + 255 * 127) / 255)
    assert (px[1, 1] == expect).all()
    la = np.stack([np.full((2, 2), 10, np.uint8), np.array([[255, 0], [0, 255]], np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert (read_image(tmp_path / "la.png")[..., 0] == [[10, 255], [255, 10]]).all()


def test_palette(tmp_path):
    a = _rgb(8, 8)
    p = Image.fromarray(a).quantize(16)
    p.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), np.asarray(p.convert("RGB")))
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    px = read_image(tmp_path / "pt.png")
    idx = np.asarray(p)
    assert (px[idx == 0] == 255).all() and np.array_equal(px[idx != 0], np.asarray(p.convert("RGB"))[idx != 0])


def test_16bit(tmp_path):
    g16 = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert np.array_equal(read_image(tmp_path / "g16.png")[..., 1], _r16(g16))
    c16 = RNG.integers(0, 65536, (11, 7, 3), dtype=np.uint16)
    (tmp_path / "c16.png").write_bytes(_png16(c16))
    assert np.array_equal(read_image(tmp_path / "c16.png"), _r16(c16))  # exact, not Pillow's high byte
    a16 = RNG.integers(0, 65536, (10, 4, 4), dtype=np.uint16)
    a16[..., 3] = 65535
    (tmp_path / "a16.png").write_bytes(_png16(a16))
    assert np.array_equal(read_image(tmp_path / "a16.png"), _r16(a16[..., :3]))
    import tifffile
    tifffile.imwrite(tmp_path / "c16.tif", c16)
    assert np.array_equal(read_image(tmp_path / "c16.tif"), _r16(c16))
    edge = np.array([[[0, 128, 129], [385, 65406, 65407]]], np.uint16)
    (tmp_path / "edge.png").write_bytes(_png16(edge))
    assert read_image(tmp_path / "edge.png").tolist() == [[[0, 0, 1], [1, 254, 255]]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    im = Image.fromarray(_rgb(5, 8))
    exif = im.getexif()
    exif[274] = orientation
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")).convert("RGB"))
    px = read_image(tmp_path / "o.jpg")
    assert np.array_equal(px, ref)
    assert px.shape[:2] == ((8, 5) if orientation >= 5 else (5, 8))


def test_other_formats_and_odd_sizes(tmp_path):
    a = _rgb(7, 13)
    for ext in ["bmp", "ppm", "tif", "webp"]:
        kw = {"lossless": True} if ext == "webp" else {}
        Image.fromarray(a).save(tmp_path / f"x.{ext}", **kw)
        assert np.array_equal(read_image(tmp_path / f"x.{ext}"), a), ext
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg").shape == (7, 13, 3)


def test_tensors():
    items = [ImageItem("a", _rgb(4, 6)), ImageItem("b", _rgb(4, 6))]
    x = to_tensor(items)
    assert x.shape == (2, 3, 4, 6) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(to_uint8(x), np.stack([it.pixels for it in items]))
    assert np.array_equal(to_uint8(x[0]), items[0].pixels)
    mixed = to_tensor([items[0], _rgb(5, 5)])
    assert isinstance(mixed, list) and [t.shape for t in mixed] == [(1, 3, 4, 6), (1, 3, 5, 5)]
    assert to_uint8(torch.tensor([[[[-0.5]], [[0.5]], [[2.0]]]])).tolist() == [[[[0, 128, 255]]]]
    with pytest.raises(ImageError):
        to_uint8(torch.zeros(4, 4))


# ----------------------------------------------------------------------------- square_resize

def test_square_resize_takes_the_centred_square_then_resizes():
    # a 40×100 image: columns 0–29 black, 30–69 a gradient, 70–99 white; the centred square is
    # columns 30–69, so neither pure black nor pure white survives the resize
    pixels = np.zeros((40, 100, 3), np.uint8)
    pixels[:, 30:70] = np.linspace(1, 254, 40, dtype=np.uint8)[None, :, None]
    pixels[:, 70:] = 255
    out = square_resize(ImageItem("x", pixels), 20).pixels
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert 0 < out.min() and out.max() < 255
    assert np.all(np.diff(out[0, :, 0].astype(int)) >= 0)  # the gradient keeps its direction


def test_square_resize_keeps_a_constant_image_constant_and_a_fitting_square_unchanged():
    flat = np.full((90, 70, 3), 77, np.uint8)
    assert np.all(square_resize(ImageItem("f", flat), 33).pixels == 77)
    square = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(square_resize(ImageItem("s", square), 64).pixels, square)
    assert square_resize(ImageItem("s", square), None).pixels is square


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "64"])
def test_square_resize_refuses_a_bad_size(value):
    with pytest.raises(ConfigError, match="resize"):
        square_resize(ImageItem("x", np.zeros((8, 8, 3), np.uint8)), value)


# ----------------------------------------------------------------------------- training crops

def _coded_image(folder, name, h, w):
    """An image whose pixels are all different: (row, column, row + column) mod 256."""
    rows, cols = np.mgrid[:h, :w]
    pixels = np.stack([rows % 256, cols % 256, (rows * 7 + cols) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(folder / name)
    return pixels


def test_patch_sampler_draws_index_then_window_and_both_flips(tmp_path):
    from linksim.crops import PatchSampler

    pixels = _coded_image(tmp_path, "a.png", 40, 50)
    _coded_image(tmp_path, "small.png", 10, 10)  # smaller than the crop: left out
    sampler = PatchSampler([str(tmp_path)], crop=16)
    assert len(sampler) == 1 and sampler.skipped == 1
    gen = torch.Generator().manual_seed(3)
    twin = torch.Generator().manual_seed(3)
    x = sampler.sample(6, gen)
    assert x.shape == (6, 3, 16, 16) and x.dtype == torch.float32
    # the draws, in their fixed order: image indices, then (top, left, h-flip, v-flip) per crop
    assert torch.randint(1, (6,), generator=twin).tolist() == [0] * 6
    for b, (u_top, u_left, u_h, u_v) in enumerate(torch.rand(6, 4, generator=twin).tolist()):
        top, left = int(u_top * (40 - 16 + 1)), int(u_left * (50 - 16 + 1))
        patch = pixels[top:top + 16, left:left + 16]
        patch = patch[:, ::-1] if u_h < 0.5 else patch
        patch = patch[::-1] if u_v < 0.5 else patch
        assert torch.equal(x[b], torch.from_numpy(patch.copy()).permute(2, 0, 1).float() / 255)
    assert torch.equal(gen.get_state(), twin.get_state())  # nothing else drawn


def test_patch_sampler_refuses_a_crop_larger_than_every_image(tmp_path):
    from linksim.crops import PatchSampler

    _coded_image(tmp_path, "a.png", 20, 20)
    with pytest.raises(ConfigError, match="crop"):
        PatchSampler([str(tmp_path)], crop=32)


def test_resized_crops_resize_the_shorter_side_and_flip_only_horizontally(tmp_path):
    from linksim.crops import ResizedCrops

    _coded_image(tmp_path, "a.png", 40, 80)
    crops = ResizedCrops([str(tmp_path)], size=20)
    assert crops.images[0].shape == (3, 20, 40)  # shorter side 40 → 20, the aspect kept
    kept = ResizedCrops([str(tmp_path)], size=20, keep_scale=True)
    assert kept.images[0].shape == (3, 40, 80)  # large enough: its own scale
    assert ResizedCrops([str(tmp_path)], size=64, keep_scale=True).images[0].shape == (3, 64, 128)  # upscaled
    gen, twin = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = kept.sample(8, gen)
    torch.randint(1, (8,), generator=twin)
    image = kept.images[0]
    for b, (u_top, u_left, u_flip) in enumerate(torch.rand(8, 3, generator=twin).tolist()):
        top, left = int(u_top * (40 - 20 + 1)), int(u_left * (80 - 20 + 1))
        patch = image[:, top:top + 20, left:left + 20]
        assert torch.equal(x[b], (patch.flip(2) if u_flip < 0.5 else patch).float() / 255)
    assert torch.equal(gen.get_state(), twin.get_state())
