"""QuickDraw's numpy_bitmap format: reading, writing and rendering 28x28 drawings.

Google publishes one ``<category>.npy`` file per category, each an ``np.save`` of an (N, 784)
uint8 array: N drawings of 28x28 pixels, ink high (up to 255) on a 0 background, each drawing
scaled so that its longer side fills the frame.  This module reads such files (memory-mapped, so
a 100 MB category costs nothing until rows are touched), writes them, and renders strokes into
the same format for the synthetic doodles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ffqueue.data.files import atomic_write
from ffqueue.errors import DataError

SIDE = 28
PIXELS = SIDE * SIDE
_SPAN = 23.0  # pixels covered by a drawing's longer side: a ~2.5 px margin on each side
_STEP = 0.35  # spacing, in pixels, of the points splatted along a stroke
_GAIN = 3.0  # ink density -> darkness: how fast a pen saturates where strokes overlap
_FLOOR = 0.08  # darkness below which a pixel stays blank


def list_categories(directory: Path) -> dict[str, Path]:
    """Map each category in `directory` to its ``.npy`` file, sorted by name.

    The category is the file stem with spaces kept: ``wine bottle.npy`` -> ``"wine bottle"``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"QuickDraw directory {directory} does not exist or is not a directory")
    found = {p.stem: p for p in directory.glob("*.npy") if p.is_file()}
    if not found:
        raise DataError(f"QuickDraw directory {directory} holds no .npy files")
    return dict(sorted(found.items()))


def _read_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Return (shape, dtype, data offset) from an .npy header, without reading the data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        return shape, dtype, f.tell()


def open_category(path: Path) -> np.ndarray:
    """Memory-map one numpy_bitmap file and check it really is one.

    Returns a read-only (N, 784) uint8 array, N >= 1.  A missing, truncated or corrupt file,
    a wrong shape or dtype, or an empty array raises DataError naming the file.  Pickled
    object arrays are never loaded.
    """
    path = Path(path)
    try:
        shape, dtype, offset = _read_header(path)
    except FileNotFoundError:
        raise DataError(f"QuickDraw file {path} does not exist") from None
    except (OSError, ValueError, EOFError, SyntaxError) as e:
        # read_magic/read_array_header raise ValueError for a bad magic string or header.
        raise DataError(f"QuickDraw file {path} is not a valid .npy file: {e}") from None
    if dtype != np.uint8:
        raise DataError(f"QuickDraw file {path} has dtype {dtype}, expected uint8")
    if len(shape) != 2 or shape[1] != PIXELS:
        raise DataError(f"QuickDraw file {path} has shape {shape}, expected (N, {PIXELS})")
    if shape[0] < 1:
        raise DataError(f"QuickDraw file {path} holds no drawings")
    size, expected = path.stat().st_size, offset + shape[0] * PIXELS
    if size < expected:
        raise DataError(f"QuickDraw file {path} is truncated: {size} bytes, expected {expected}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"QuickDraw file {path} cannot be read: {e}") from None
    return np.asarray(arr)


def save_category(path: Path, drawings: np.ndarray) -> Path:
    """Write an (N, 784) uint8 array as a numpy_bitmap file, atomically; return the path.

    The array goes to a temporary file in the same directory first and is renamed into place,
    so a reader (or a crash) never leaves half a file under the real name.
    """
    path = Path(path)
    drawings = np.asarray(drawings)
    if drawings.dtype != np.uint8 or drawings.ndim != 2 or drawings.shape[1] != PIXELS:
        raise DataError(f"{path}: drawings must be (N, {PIXELS}) uint8, got "
                        f"{drawings.shape} {drawings.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(drawings),
                                         allow_pickle=False))
    return path


def _blur(img: np.ndarray, k: tuple[float, float, float]) -> np.ndarray:
    """Separable 3-tap blur of a (B, 28, 28) stack, zero outside the frame."""
    p = np.pad(img, ((0, 0), (1, 1), (0, 0)))
    img = k[0] * p[:, :-2] + k[1] * p[:, 1:-1] + k[2] * p[:, 2:]
    p = np.pad(img, ((0, 0), (0, 0), (1, 1)))
    return k[0] * p[:, :, :-2] + k[1] * p[:, :, 1:-1] + k[2] * p[:, :, 2:]


def render(drawings: Sequence[tuple[np.ndarray, np.ndarray]],
           widths: np.ndarray | None = None) -> np.ndarray:
    """Render drawings to QuickDraw-style bitmaps, (B, 784) uint8, all in one batch.

    Each drawing is ``(points, stroke)``: float (P, 2) x, y coordinates (y down, any scale) and
    an int (P,) stroke number per point; consecutive points of one stroke are joined by a line.
    Each drawing is bounding-box normalised as in QuickDraw's bitmaps: scaled so its longer side
    spans the frame less a small margin, and centred.  `widths` in [0, 1] (default 0.5) picks the
    pen, from thin to thick, per drawing.

    Points are splatted bilinearly every ~0.35 px along each segment, weighted by the length they
    stand for, so the ink per pixel does not depend on how finely a stroke was sampled; a blur
    then gives anti-aliased strokes; ink saturates like a pen where strokes overlap, and each
    drawing is scaled so that its darkest pixel is 255.
    """
    b = len(drawings)
    if b == 0:
        return np.zeros((0, PIXELS), dtype=np.uint8)
    counts = np.array([len(p) for p, _ in drawings])
    if counts.min() < 1:
        raise DataError("render: every drawing needs at least one point")
    start = np.cumsum(counts) - counts
    pts = np.concatenate([np.asarray(p, dtype=np.float64) for p, _ in drawings])
    stroke = np.concatenate([np.asarray(s) for _, s in drawings])
    draw = np.repeat(np.arange(b), counts)
    lo, hi = np.minimum.reduceat(pts, start), np.maximum.reduceat(pts, start)
    scale = _SPAN / np.maximum((hi - lo).max(axis=1), 1e-9)
    pts = (pts - ((lo + hi) / 2)[draw]) * scale[draw, None] + (SIDE - 1) / 2.0

    # A segment joins two consecutive points of the same stroke of the same drawing.
    seg = np.flatnonzero((stroke[:-1] == stroke[1:]) & (draw[:-1] == draw[1:]))
    a, d = pts[seg], pts[seg + 1] - pts[seg]
    length = np.hypot(d[:, 0], d[:, 1])
    m = np.maximum(1, np.ceil(length / _STEP)).astype(np.int64)
    which = np.repeat(np.arange(seg.size), m)
    t = (np.arange(which.size) - np.repeat(np.cumsum(m) - m, m) + 0.5) / m[which]
    xy = a[which] + t[:, None] * d[which]
    w = (length / m)[which]
    base = draw[seg][which] * PIXELS

    x0, y0 = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
    fx, fy = xy[:, 0] - x0, xy[:, 1] - y0
    ink = np.zeros(b * PIXELS)
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                       (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < SIDE) & (yi >= 0) & (yi < SIDE)
        ink += np.bincount((base + yi * SIDE + xi)[ok], (w * wt)[ok], minlength=ink.size)
    stack = ink.reshape(b, SIDE, SIDE)
    pen = np.full(b, 0.5) if widths is None else np.clip(np.asarray(widths, float), 0.0, 1.0)
    thin, thick = _blur(stack, (0.12, 0.76, 0.12)), _blur(stack, (0.28, 0.44, 0.28))
    img = 1.0 - np.exp(-_GAIN * (thin + pen[:, None, None] * (thick - thin)))
    img = np.maximum(img - _FLOOR, 0.0)  # drop the blur's faint far tails: crisp stroke edges
    # As in QuickDraw's bitmaps the darkest pixel of every drawing is 255, whatever the pen.
    peak = img.max(axis=(1, 2), keepdims=True)
    img = 255.0 * img / np.where(peak > 0, peak, 1.0)
    return np.rint(img).astype(np.uint8).reshape(b, PIXELS)
