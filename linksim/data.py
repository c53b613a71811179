"""Image sources: bundled sample photographs, folders and file lists.

Every image becomes an :class:`ImageItem` holding uint8 RGB pixels of shape [H, W, 3].
Input handling (the same for every source):

- **EXIF orientation** (tag 274) is applied, so pixels are upright as a viewer shows them.
- **Grayscale** (``L``, ``1``, ``I;16``…) is replicated to three channels.
- **Palette** (``P``) is expanded to RGB (to RGBA first when it has transparency).
- **Alpha** (``RGBA``, ``LA``, ``PA``, palette transparency) is **composited on white**:
  ``c' = c·α + 1·(1 − α)`` (computed at the source bit depth, then rounded once).
  Dropping alpha instead would show whatever colour hides under transparent pixels.
- **16 bit** per sample (PNG gray/RGB/RGBA, TIFF) is scaled exactly:
  ``v8 = round(v16 / 257)`` (= ``(v16 + 128) // 257``; never a tie). Pillow truncates
  16-bit RGB PNG/TIFF to the high byte, so those are read by ``pypng`` and ``tifffile``;
  another 16-bit colour format falls back to Pillow's high byte (off by at most one
  level). 32-bit integer gray (``I``) is read as 16-bit data (clipped to 0…65535).
- Other modes (``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) go through Pillow's ``convert("RGB")``;
  float images (``F``) are refused with :class:`~linksim.errors.ImageError`.
- **Sizes are kept** as they are (odd or small sizes included): the codecs accept any
  H, W >= 1 (see :mod:`linksim.digital.codecs.bpg`); crop where a model needs fixed sizes
  (:func:`center_crop`, a scenario's ``crop_multiple``).

Errors: a missing path, a path that is neither a folder nor an image file, an empty
folder, or a non-positive ``limit`` raise :class:`~linksim.errors.ConfigError`; a file
that cannot be decoded as an image (corrupt, truncated, text named ``.png``) raises
:class:`~linksim.errors.ImageError` naming the file.

Example
-------
>>> items = load_images("samples", limit=2)
>>> items[0].id, items[0].pixels.shape, items[0].pixels.dtype
('astronaut', (512, 512, 3), dtype('uint8'))
>>> x = to_tensor(load_images("samples", limit=1))  # float32 [1, 3, 512, 512] in [0, 1]
>>> xs = to_tensor(load_images("/path/to/kodak"))  # sizes differ (portrait images): list of [1, 3, H, W]
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import png
from PIL import Image, UnidentifiedImageError

from linksim.errors import ConfigError, ImageError

#: File extensions read from folders (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
#: The bundled samples: real colour photographs shipped inside scikit-image (no download).
SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")

_ALLOWED = ('"samples", an existing folder of image files (' + "/".join(e[1:] for e in IMAGE_EXTENSIONS)
            + "), an image file, or a list of image files")


@dataclass
class ImageItem:
    """One source image.

    Attributes
    ----------
    id : str
        Stable identifier: the file stem (made unique with ``-2``, ``-3``… when two
        files share a stem) or the sample name.
    pixels : np.ndarray, uint8, [H, W, 3]
        RGB pixels.
    """

    id: str
    pixels: np.ndarray

    def __repr__(self) -> str:
        return f"ImageItem(id={self.id!r}, shape={tuple(self.pixels.shape)})"


# ----------------------------------------------------------------------------- sources

def _sample(name: str) -> np.ndarray:
    import skimage.data as skd
    if name == "motorcycle":
        img = skd.stereo_motorcycle()[0]
    else:
        img = getattr(skd, name)()
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _check_limit(limit) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0:
        raise ConfigError("limit", limit, "a positive integer or None")
    return int(limit)


def _folder_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError("images", str(folder),
                          f"a folder containing image files ({', '.join(IMAGE_EXTENSIONS)}); this one has none")
    return files


def load_images(source: str | Path | Sequence[str | Path], limit: int | None = None) -> list[ImageItem]:
    """Load images as uint8 RGB.

    Parameters
    ----------
    source : str | Path | list
        ``"samples"`` (the bundled photographs :data:`SAMPLE_NAMES`; the exact string,
        write ``./samples`` for a folder of that name), a folder (its image files
        sorted by name; other files are skipped), one image file, or a list of image
        files.
    limit : int | None
        Keep only the first ``limit`` images (applied before decoding).

    Returns
    -------
    list[ImageItem]
        Pixels uint8 [H, W, 3], sizes as in the files.
    """
    limit = _check_limit(limit)
    if isinstance(source, str) and source == "samples":
        names = SAMPLE_NAMES[:limit] if limit else SAMPLE_NAMES
        return [ImageItem(n, _sample(n)) for n in names]
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            files = _folder_files(path)
        elif path.is_file():
            files = [path]
        else:
            raise ConfigError("images", str(source), _ALLOWED + " (the path does not exist)")
    elif isinstance(source, (list, tuple)):
        if not source:
            raise ConfigError("images", source, "a non-empty list of image files")
        files = []
        for i, f in enumerate(source):
            if not isinstance(f, (str, Path)) or not Path(f).expanduser().is_file():
                raise ConfigError(f"images[{i}]", str(f), "an existing image file")
            files.append(Path(f).expanduser())
    else:
        raise ConfigError("images", source, _ALLOWED)
    if limit:
        files = files[:limit]
    items, seen = [], {}
    for f in files:
        stem = f.stem
        seen[stem] = seen.get(stem, 0) + 1
        item_id = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        items.append(ImageItem(item_id, read_image(f)))
    return items


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files under each path (folders searched recursively, sorted) — training data.

    :raises ConfigError: field ``data`` — a missing path or a folder without images.
    """
    files = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ConfigError("data", str(p), "a folder that contains images")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError("data", str(p), "an existing image folder or file")
    return files


# ----------------------------------------------------------------------------- decoding

def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (1–8) to an array [H, W, ...] (as ``ImageOps.exif_transpose``)."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = np.rot90(a.swapaxes(0, 1), 2)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _to_rgb8(a: np.ndarray, peak: int) -> np.ndarray:
    """[H, W] or [H, W, C] with C in 1..4 at ``peak`` (255 or 65535) -> uint8 [H, W, 3]."""
    if a.ndim == 2:
        a = a[..., None]
    c = a.shape[2]
    a = a.astype(np.int64)
    if c in (2, 4):  # alpha: composite on white at full precision
        color, alpha = a[..., :c - 1], a[..., c - 1:]
        a = (color * alpha + peak * (peak - alpha) + peak // 2) // peak
    elif c != 1 and c != 3:
        raise ValueError(f"{c} channels")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if peak == 65535:
        a = (a + 128) // 257
    return np.ascontiguousarray(np.clip(a, 0, 255).astype(np.uint8))


def _png16_color(path: Path) -> np.ndarray | None:
    """16-bit RGB / RGBA PNG -> uint16 [H, W, 3|4] through pypng; None if not such a PNG.

    Pillow keeps only the high byte of 16-bit colour PNGs; pypng decodes every filter and
    interlacing exactly.
    """
    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()
    if info["bitdepth"] != 16 or info["planes"] not in (3, 4):
        return None
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])


def _tiff16(path: Path) -> np.ndarray | None:
    try:
        import tifffile
        with tifffile.TiffFile(path) as t:
            page = t.pages[0]
            if page.dtype != np.uint16:
                return None
            a = page.asarray()
    except Exception:
        return None
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2, 3, 4)):
        return a
    return None


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as uint8 [H, W, 3] RGB (rules in the module docstring).

    Raises
    ------
    ImageError
        The file cannot be decoded as an image, or has an unsupported mode.
    """
    path = Path(path)
    allowed = "a readable image file (" + ", ".join(IMAGE_EXTENSIONS) + ")"
    try:
        with Image.open(path) as im:
            fmt = im.format
            orientation = int(im.getexif().get(274, 1) or 1)
            a16 = None
            if fmt == "PNG":
                a16 = _png16_color(path)
            elif fmt == "TIFF":
                a16 = _tiff16(path)
            if a16 is not None:
                rgb = _to_rgb8(a16, 65535)
            else:
                im.load()
                mode = im.mode
                if mode.startswith("I;16") or mode == "I":
                    a = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
                    rgb = _to_rgb8(a, 65535)
                elif mode == "F":
                    raise ImageError(f"{path}: floating-point image (mode F) — expected 8- or 16-bit "
                                     f"integer samples")
                else:
                    if mode == "P":
                        im2 = im.convert("RGBA" if "transparency" in im.info else "RGB")
                    elif mode in ("PA", "RGBa", "La"):
                        im2 = im.convert("RGBA")
                    elif mode == "1":
                        im2 = im.convert("L")
                    elif mode in ("L", "LA", "RGB", "RGBA"):
                        im2 = im
                    else:
                        im2 = im.convert("RGB")
                    rgb = _to_rgb8(np.asarray(im2), 255)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error, struct.error,
            IndexError, EOFError, png.Error) as e:
        raise ImageError(f"{path}: cannot be decoded as an image ({type(e).__name__}: {e}) — expected "
                         f"{allowed}") from e
    return _orient(rgb, orientation)


def center_crop(item: ImageItem, multiple: int | None) -> ImageItem:
    """``item`` center-cropped to the largest multiple of ``multiple`` in each side.

    With ``multiple`` None or 1 the item is returned unchanged. When a side is cut by an
    odd number of pixels the extra pixel goes from the bottom/right. A scenario's
    ``crop_multiple: 16`` makes every image fit a DeepJSCC model with 2^4 downsampling
    exactly, so every scheme gets the same k.

    Raises
    ------
    ConfigError
        ``crop_multiple`` is not a positive integer, or a side of the image is smaller than it.

    Example
    -------
    >>> center_crop(ImageItem("x", np.zeros((300, 451, 3), np.uint8)), 16).pixels.shape
    (288, 448, 3)
    """
    if multiple is None:
        return item
    _check_positive(multiple, "crop_multiple")
    height, width = item.pixels.shape[:2]
    new_h, new_w = height // multiple * multiple, width // multiple * multiple
    if new_h == 0 or new_w == 0:
        raise ConfigError("crop_multiple", int(multiple), f"at most the smallest side of every image "
                                                          f"({item.id} is {height}×{width} pixels)")
    if (new_h, new_w) == (height, width):
        return item
    return ImageItem(item.id, _centred(item.pixels, new_h, new_w))


def square_resize(item: ImageItem, size: int | None) -> ImageItem:
    """``item`` centre-cropped to a square and resized to ``size``×``size`` (bicubic, antialiased).

    With ``size`` None the item is returned unchanged. A diffusion prior has one resolution (a
    64×64 face prior takes 64×64 images); a scenario's ``resize: 64`` brings every image to
    it before any scheme sees it, so the restorer and the metrics compare the same picture.
    The square is the largest centred one (the extra pixel of an odd cut from the bottom/right).

    Raises
    ------
    ConfigError
        ``resize`` is not a positive integer.

    Example
    -------
    >>> square_resize(ImageItem("x", np.zeros((300, 451, 3), np.uint8)), 64).pixels.shape
    (64, 64, 3)
    """
    if size is None:
        return item
    _check_positive(size, "resize")
    side = min(item.pixels.shape[:2])
    square = _centred(item.pixels, side, side)
    if side == size:
        return ImageItem(item.id, square)
    resized = Image.fromarray(square).resize((int(size), int(size)), Image.BICUBIC, reducing_gap=None)
    return ImageItem(item.id, np.asarray(resized, dtype=np.uint8).copy())


def _check_positive(value, field: str) -> None:
    """Refuse anything but a positive integer for the size field ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(field, value, "a positive integer (or none)")


def _centred(pixels: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """The centred ``new_h``×``new_w`` window of ``pixels`` (an odd cut's extra pixel from the
    bottom/right), contiguous."""
    top, left = (pixels.shape[0] - new_h) // 2, (pixels.shape[1] - new_w) // 2
    return np.ascontiguousarray(pixels[top:top + new_h, left:left + new_w])


# ----------------------------------------------------------------------------- tensors

def to_tensor(items: Sequence[ImageItem | np.ndarray]):
    """uint8 [H, W, 3] images -> float32 tensors in [0, 1].

    Returns
    -------
    torch.Tensor [B, 3, H, W]
        When every image has the same size;
    list[torch.Tensor [1, 3, H, W]]
        otherwise (one batch of one per image).
    """
    import torch
    arrays = [it.pixels if isinstance(it, ImageItem) else np.asarray(it) for it in items]
    if not arrays:
        raise ConfigError("images", [], "a non-empty list of images")
    ts = [torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1).div_(255.0) for a in arrays]  # copies: inputs may be read-only
    if len({tuple(t.shape) for t in ts}) == 1:
        return torch.stack(ts)
    return [t.unsqueeze(0) for t in ts]


def to_uint8(x) -> np.ndarray:
    """float tensor/array in [0, 1], [B, 3, H, W] or [3, H, W] -> uint8 [B, H, W, 3] or [H, W, 3].

    Values are clamped to [0, 1], scaled by 255 and rounded to nearest.
    """
    try:
        import torch
        if isinstance(x, torch.Tensor):
            x = x.detach().to("cpu", torch.float32).numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ImageError(f"to_uint8: got an array of shape {x.shape} — expected [B, 3, H, W] or [3, H, W]")
    y = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(y, -3, -1))
