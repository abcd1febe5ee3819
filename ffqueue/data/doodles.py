"""Synthetic QuickDraw-like doodles: the embedded default data set.

The real QuickDraw bitmaps cannot be downloaded here, so this module draws 20 classes itself.
Each drawing is a list of strokes (polylines in float coordinates, y pointing down), which are
"humanised" (a smooth warp that bends strokes and skews proportions, wobble, imprecise joins,
rotation, stretch), then rendered by `quickdraw.render` to 28x28 uint8 bounding-box normalised
like QuickDraw's numpy_bitmaps: the longer side fills the frame with a small margin and the
drawing is centred, so position cannot tell classes apart.

CONVERGENT classes are drawn consistently (one template whose proportions vary a little, small
jitter), so their average image is sharp.  A few of their drawings are sloppy the way players
are (an open circle, a shaky line, a shallow zigzag, a flicked arrow head, a full moon, a
two-line twinkle of a star), so near neighbours are sometimes confused and a classifier does not
reach 100% on them: on the demo's mix_00 the fully-connected nets score about 0.90-0.97, as on
real QuickDraw.  DIVERGENT classes vary widely (several templates, random parts, mirroring,
larger rotations, scenery), so their average image is a blur -- yet each keeps features a
classifier can learn (about 0.5-0.73 on mix_10).

The stroke templates of the classes live in `ffqueue.data.shapes`; this module humanises,
renders and writes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffqueue.data.quickdraw import PIXELS, render, save_category
from ffqueue.data.shapes import (
    CONVERGENT_SHAPES,
    DIVERGENT_SHAPES,
    TAU,
    Rng,
    Strokes,
    ellipse,
    polyline,
)
from ffqueue.errors import DataError

_CHUNK = 1024  # drawings rendered at once: bounds memory, keeps numpy calls large


@dataclass(frozen=True)
class _Style:
    """How loosely a class is drawn."""

    rotation: float  # standard deviation of the drawing's rotation, radians
    stretch: float  # standard deviation of log(x scale / y scale)
    wobble: float  # per-vertex noise, fraction of the drawing's size
    offset: float  # per-stroke shift (imprecise joins), fraction of the drawing's size
    bend: float  # smooth warp (bent strokes, uneven proportions), fraction of the drawing's size
    mirror: bool  # flip left-right half of the time
    clutter: float  # chance of a stroke being left out, and of scenery being added


_TIGHT = _Style(np.radians(4.0), stretch=0.05, wobble=0.008, offset=0.015, bend=0.03,
                mirror=False, clutter=0.0)
_LOOSE = _Style(np.radians(20.0), stretch=0.2, wobble=0.015, offset=0.03, bend=0.008,
                mirror=True, clutter=0.2)

CONVERGENT: tuple[str, ...] = tuple(CONVERGENT_SHAPES)
DIVERGENT: tuple[str, ...] = tuple(DIVERGENT_SHAPES)
_CLASSES: dict[str, tuple[Callable[[Rng], Strokes], _Style]] = {
    **{name: (fn, _TIGHT) for name, fn in CONVERGENT_SHAPES.items()},
    **{name: (fn, _LOOSE) for name, fn in DIVERGENT_SHAPES.items()},
}


def _clutter(strokes: Strokes, r: Rng, p: float) -> Strokes:
    """Leave out details and add scenery the way careless players do.

    The first stroke is the main outline and always stays.  Scenery (a ground line or a sun)
    also shifts and shrinks the object once the drawing is bounding-box normalised.
    """
    keep = [strokes[0]] + [q for q in strokes[1:] if r.random() >= p / 2]
    lo, hi = np.concatenate(keep).min(axis=0), np.concatenate(keep).max(axis=0)
    size = float((hi - lo).max())
    if r.random() < p:  # ground line
        m = r.uniform(0.0, 0.4) * size
        keep.append(polyline(lo[0] - m, hi[1] + 0.05 * size, hi[0] + m, hi[1] + 0.05 * size))
    if r.random() < p / 2:  # sun in an upper corner
        rad = r.uniform(0.1, 0.2) * size
        keep.append(ellipse(r.choice([lo[0], hi[0]]), lo[1] - 1.5 * rad, rad, rad, n=10))
    return keep


def _densify(pts: np.ndarray, ids: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert points along each segment longer than `step`, so that a warp can bend it."""
    seg = np.flatnonzero(ids[:-1] == ids[1:])
    d = pts[seg + 1] - pts[seg]
    m = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / step)).astype(np.int64)
    if m.max() == 1:
        return pts, ids
    # Each point is followed by m - 1 new ones when it starts a segment, by none otherwise.
    extra = np.zeros(len(pts), dtype=np.int64)
    extra[seg] = m - 1
    reps = extra + 1
    start = np.repeat(np.arange(len(pts)), reps)
    frac = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    nxt = np.minimum(start + 1, len(pts) - 1)
    t = frac / np.repeat(np.where(extra > 0, reps, 1), reps)
    return pts[start] + t[:, None] * (pts[nxt] - pts[start]), ids[start]


def _humanise(strokes: Strokes, r: Rng, style: _Style) -> tuple[np.ndarray, np.ndarray]:
    """Jitter one drawing; return its points (P, 2) and each point's stroke number."""
    if style.clutter > 0:
        strokes = _clutter(strokes, r, style.clutter)
    pts = np.concatenate(strokes)
    ids = np.repeat(np.arange(len(strokes)), [len(s) for s in strokes])
    size = float(np.ptp(pts, axis=0).max()) or 1.0
    pts, ids = _densify(pts, ids, size / 12.0)
    pts = pts + r.normal(0.0, style.offset * size, (len(strokes), 2))[ids]
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    for _ in range(2):  # two smooth waves over the page: a hand never draws quite straight
        k, phase = r.normal(0.0, TAU / size, 2), r.uniform(0.0, TAU)
        wave = np.sin((pts - centre) @ k + phase)[:, None]
        pts = pts + r.normal(0.0, style.bend * size, 2) * wave
    pts = pts + r.normal(0.0, style.wobble * size, pts.shape)
    a, sx = r.normal(0.0, style.rotation), np.exp(r.normal(0.0, style.stretch))
    if style.mirror and r.random() < 0.5:
        sx = -sx
    m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx, 1.0])
    return pts @ m.T, ids


def generate(name: str, n: int, seed: int) -> np.ndarray:
    """Draw `n` doodles of class `name` as an (n, 784) uint8 array, deterministic in all three.

    Each drawing consumes the random stream in turn, so the first m drawings of
    ``generate(name, n, seed)`` are ``generate(name, m, seed)``.
    """
    if name not in _CLASSES:
        raise DataError(f"unknown doodle class {name!r}; known: {', '.join(_CLASSES)}")
    if n < 0 or seed < 0:
        raise DataError(f"generate({name!r}): n and seed must be >= 0, got n={n}, seed={seed}")
    draw_fn, style = _CLASSES[name]
    # crc32, unlike hash(), is stable across processes, so (name, seed) fixes the drawings.
    r = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))
    out = np.empty((n, PIXELS), dtype=np.uint8)
    for lo in range(0, n, _CHUNK):
        batch, widths = [], []
        for _ in range(min(_CHUNK, n - lo)):
            batch.append(_humanise(draw_fn(r), r, style))
            widths.append(r.random())  # pen width; drawn in turn so that prefixes stay stable
        out[lo:lo + len(batch)] = render(batch, np.array(widths))
    return out


def write_doodles(out_dir: Path, per_class: int = 5000, seed: int = 0,
                  classes: Sequence[str] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write ``<name>.npy`` per class in QuickDraw's numpy_bitmap format; return the paths.

    Each file is ``np.save`` of a (per_class, 784) uint8 array, written atomically.  `classes`
    defaults to all 20, CONVERGENT then DIVERGENT.  `progress(done, total)` is called after each
    class.
    """
    names = list(CONVERGENT + DIVERGENT if classes is None else classes)
    unknown = [c for c in names if c not in _CLASSES]
    if unknown:
        raise DataError(f"unknown doodle class(es): {', '.join(map(repr, unknown))}")
    if per_class < 1:
        raise DataError(f"write_doodles: per_class must be >= 1, got {per_class}")
    paths = []
    for i, name in enumerate(names):
        paths.append(save_category(Path(out_dir) / f"{name}.npy", generate(name, per_class, seed)))
        if progress is not None:
            progress(i + 1, len(names))
    return paths
