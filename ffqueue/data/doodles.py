"""Synthetic QuickDraw-like doodles: the embedded default data set.

The real QuickDraw bitmaps cannot be downloaded here, so this module draws 20 classes itself.
Each drawing is a list of strokes (polylines in float coordinates, y pointing down), which are
"humanised" (wobble, rotation, stretch), then rendered by `quickdraw.render` to 28x28 uint8
bounding-box normalised like QuickDraw's numpy_bitmaps: the longer side fills the frame with a
small margin and the drawing is centred, so position cannot tell classes apart.

CONVERGENT classes are drawn consistently (one template, small jitter), so their average image is
sharp.  DIVERGENT classes vary widely (several templates, random parts, mirroring, larger
rotations), so their average image is a blur -- yet each keeps features a classifier can learn.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffqueue.data.quickdraw import PIXELS, render, save_category
from ffqueue.errors import DataError

TAU = 2.0 * np.pi
_CHUNK = 1024  # drawings rendered at once: bounds memory, keeps numpy calls large

Strokes = list[np.ndarray]
Rng = np.random.Generator


def _p(*xy: float) -> np.ndarray:
    """A polyline from flat x, y pairs."""
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


def _ell(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = TAU,
         n: int = 20) -> np.ndarray:
    """An elliptic arc (a full ellipse by default)."""
    t = np.linspace(a0, a1, n)
    return np.column_stack((cx + rx * np.cos(t), cy + ry * np.sin(t)))


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return _p(x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)


def _bumpy(cx: float, cy: float, rx: float, ry: float, bumps: int, depth: float,
           a0: float = 0.0, a1: float = TAU) -> np.ndarray:
    """A scalloped outline (clouds, tree crowns), closed unless an arc a0..a1 is asked for."""
    t = np.linspace(a0, a1, int(8 * bumps * (a1 - a0) / TAU) + 1)
    r = 1.0 + depth * np.abs(np.sin(bumps * t / 2.0))
    return np.column_stack((cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)))


# --- convergent classes: one template each; only _humanise's small jitter varies them ------


def _circle(r: Rng) -> Strokes:
    a = r.uniform(0.0, TAU)  # people start anywhere and overshoot the closing point slightly
    return [_ell(0, 0, 1, 1, a, a + TAU * r.uniform(1.0, 1.06), 28)]


def _fixed(strokes: Strokes) -> Callable[[Rng], Strokes]:
    return lambda r: strokes  # _humanise copies the points, so sharing them is safe


_T11, _T72 = np.linspace(-np.pi / 2, 1.5 * np.pi, 11), np.linspace(0.0, 3 * TAU, 72)
_CONVERGENT = {
    "circle": _circle,
    "square": _fixed([_rect(-1, -1, 1, 1)]),
    "triangle": _fixed([_p(0, -1, 1, 0.75, -1, 0.75, 0, -1)]),
    "star": _fixed([np.column_stack((np.cos(_T11), np.sin(_T11)))
                    * np.where(np.arange(11) % 2, 0.42, 1.0)[:, None]]),
    "line": _fixed([_p(-1, 0, 1, 0)]),
    "zigzag": _fixed([np.column_stack((np.linspace(-1, 1, 9), 0.3 * (-1.0) ** np.arange(1, 10)))]),
    "cross": _fixed([_p(0, -1, 0, 1), _p(-1, 0, 1, 0)]),
    "spiral": _fixed([np.column_stack((_T72 * np.cos(_T72), _T72 * np.sin(_T72))) / (3 * TAU)]),
    "arrow": _fixed([_p(-1, 0, 1, 0), _p(0.55, -0.4, 1, 0, 0.55, 0.4)]),
    "moon": _fixed([np.vstack((_ell(0, 0, 1, 1, np.pi / 2, 1.5 * np.pi, 16),
                               _ell(0, 0, 0.45, 1, 1.5 * np.pi, np.pi / 2, 12)[1:]))]),
}


# --- divergent classes: several templates, random parts and counts -------------------------


def _house(r: Rng) -> Strokes:
    w, h, style = r.uniform(0.8, 1.7), r.uniform(0.6, 1.3), r.integers(4)
    o, rh = r.uniform(0.0, 0.25), r.uniform(0.3, 0.9)
    if style == 3:  # flat-roofed block of flats: tall, no roof
        h = r.uniform(1.5, 2.4)
    s = [_rect(-w / 2, -h, w / 2, 0)]
    if style == 0:
        s.append(_p(-w / 2 - o, -h, 0, -h - rh, w / 2 + o, -h))
    elif style == 1:  # trapezoid roof
        s.append(_p(-w / 2 - o, -h, -w / 4, -h - rh, w / 4, -h - rh, w / 2 + o, -h))
    elif style == 2:  # seen at an angle: a side wall and a slanted roof
        d = r.uniform(0.4, 0.9)
        s += [_p(w / 2, 0, w / 2 + d, -0.3 * d, w / 2 + d, -h - 0.3 * d, w / 2, -h),
              _p(-w / 2, -h, 0, -h - rh, w / 2 + d, -h - rh - 0.3 * d, w / 2 + d, -h - 0.3 * d)]
    if style in (0, 1) and r.random() < 0.4:  # chimney
        cx = r.uniform(0.1, 0.3) * w
        s.append(_p(cx, -h - 0.3 * rh, cx, -h - rh, cx + 0.15, -h - rh, cx + 0.15, -h - 0.1))
    if r.random() < 0.7:  # door somewhere on the ground line
        dw, dh = w * r.uniform(0.15, 0.3), h * r.uniform(0.3, 0.6)
        dx = r.uniform(-w / 2 + dw, w / 2 - dw)
        s.append(_p(dx - dw / 2, 0, dx - dw / 2, -dh, dx + dw / 2, -dh, dx + dw / 2, 0))
    for _ in range(r.integers(0, 3 if style < 3 else 7)):
        x, y, a = r.uniform(-w / 2 + 0.1, w / 2 - 0.3), r.uniform(-h + 0.1, -0.4), 0.17
        s.append(_rect(x, y, x + a, y + a))
    return s


def _ears(cx: float, cy: float, rad: float, r: Rng) -> Strokes:
    """Two pointed cat ears on a head of radius `rad` centred at (cx, cy)."""
    tall = r.uniform(0.6, 1.1) * rad
    return [_p(cx + sx * 0.85 * rad, cy - 0.5 * rad, cx + sx * 0.75 * rad, cy - rad - tall,
               cx + sx * 0.2 * rad, cy - 0.95 * rad) for sx in (-1, 1)]


def _cat(r: Rng) -> Strokes:
    style = r.integers(3)
    if style == 0:  # a face: head, ears, eyes, whiskers
        s = [_ell(0, 0, 1, r.uniform(0.75, 1.0)), *_ears(0, 0, 1, r)]
        s += [_ell(sx * 0.4, -0.15, 0.12, 0.15, n=8) for sx in (-1, 1)]
        s += [_p(sx * 0.3, 0.35, sx * 1.5, 0.1 + 0.25 * i) for sx in (-1, 1)
              for i in range(r.integers(1, 4))]
        return s
    if style == 1:  # sitting, seen from the side: body, head, tail
        hx = r.uniform(0.1, 0.4)
        s = [_ell(0, 0.6, 0.65, 0.8), _ell(hx, -0.5, 0.45, 0.4), *_ears(hx, -0.5, 0.42, r)]
        s.append(_ell(-1.05, 1.1, 0.5, r.uniform(0.6, 1.1), 0, -np.pi * 0.8, 10))
        return s
    # walking: long body, four legs, head in front, tail raised
    s = [_ell(0, 0, 1, 0.4), _ell(1.15, -0.55, 0.35, 0.33), *_ears(1.15, -0.55, 0.33, r)]
    s += [_p(x, 0.3, x + r.uniform(-0.15, 0.15), 1.0) for x in (-0.7, -0.45, 0.45, 0.7)]
    s.append(_p(-1, -0.1, -1.4, -0.6, -1.3, -1.1))
    return s


def _tree(r: Rng) -> Strokes:
    style, tw, th = r.integers(4), r.uniform(0.1, 0.25), r.uniform(0.5, 1.2)
    if style == 0:  # trunk and a cloud of leaves
        return [_p(-tw, 0, -tw, -th), _p(tw, 0, tw, -th),
                _bumpy(0, -th - 0.7, r.uniform(0.7, 1.2), 0.7, int(r.integers(5, 10)), 0.2)]
    if style == 1:  # pine: stacked triangles
        s, y = [_rect(-tw, 0, tw, -0.35)], -0.35
        for i in range(int(r.integers(2, 5))):
            w = 1.0 - 0.2 * i
            s.append(_p(-w, y, 0, y - 0.9, w, y, -w, y))
            y -= 0.5
        return s
    if style == 2:  # bare: trunk and forking branches
        s = [_p(0, 0, 0, -th)]
        for _ in range(int(r.integers(2, 6))):
            a, y = r.uniform(-1.2, 1.2), -r.uniform(0.6, 1.0) * th
            ln = r.uniform(0.6, 1.2)
            tip = (ln * np.sin(a), y - ln * np.cos(a))
            s.append(_p(0, y, *tip, tip[0] + 0.3 * np.sin(a + 0.6), tip[1] - 0.3))
        return s
    return [_p(0, 0, 0, -th), _ell(0, -th - 0.6, 0.6, 0.6)]  # lollipop


def _bicycle(r: Rng) -> Strokes:
    rb, d = r.uniform(0.35, 0.55), r.uniform(1.1, 1.8)
    rf = rb * (r.uniform(1.6, 2.4) if r.random() < 0.15 else r.uniform(0.9, 1.1))
    fy = rb - rf  # both wheels stand on the same ground line
    top, cr = -r.uniform(0.5, 0.8), (0.0, r.uniform(-0.05, 0.1))
    s = [_ell(-d / 2, 0, rb, rb), _ell(d / 2, fy, rf, rf)]
    s.append(_p(-d / 2, 0, *cr, -0.25, top, -d / 2, 0))  # chain stay, seat tube, seat stay
    if r.random() < 0.7:  # diamond frame, otherwise a step-through with one curved tube
        s.append(_p(-0.25, top, d / 2 - 0.2, top, *cr))
    else:
        s.append(_p(*cr, d / 4, top * 0.5, d / 2 - 0.2, top))
    s.append(_p(d / 2, fy, d / 2 - 0.2, top, d / 2 - 0.35, top - 0.25, d / 2 - 0.1, top - 0.3))
    s.append(_p(-0.45, top - 0.05, -0.05, top - 0.05))  # saddle
    if r.random() < 0.4:  # spokes
        s += [_p(c - rr * np.cos(a), y - rr * np.sin(a), c + rr * np.cos(a), y + rr * np.sin(a))
              for c, y, rr in ((-d / 2, 0, rb), (d / 2, fy, rf)) for a in (0.3, 1.4, 2.5)]
    return s


def _face(r: Rng) -> Strokes:
    style = r.integers(3)
    if style == 2:  # square-jawed face
        s = [_p(-0.8, -1, 0.8, -1, 0.9, 0.6, 0.3, 1.05, -0.3, 1.05, -0.9, 0.6, -0.8, -1)]
    else:
        s = [_ell(0, 0, r.uniform(0.7, 1.0), 1.0, n=24)]
    ex, ey, er = r.uniform(0.25, 0.45), r.uniform(-0.45, -0.1), r.uniform(0.06, 0.18)
    s += [_ell(sx * ex, ey, er, er, n=8) for sx in (-1, 1)]
    my, mw, curve = r.uniform(0.35, 0.6), r.uniform(0.2, 0.5), r.choice([-1.0, 0.0, 1.0, 1.0])
    if r.random() < 0.25:  # open mouth
        s.append(_ell(0, my, mw * 0.6, 0.15, n=12))
    else:
        s.append(_p(-mw, my, 0, my + 0.2 * curve, mw, my))
    if r.random() < 0.5:  # nose
        s.append(_p(0, ey + 0.15, -0.08, my - 0.15, 0.05, my - 0.12))
    if style == 1:  # hair: a zigzag fringe on top
        x = np.linspace(-0.7, 0.7, int(r.integers(5, 12)))
        s.append(np.column_stack((x, -0.75 - 0.25 * (np.arange(x.size) % 2))))
    if r.random() < 0.3:  # ears
        s += [_ell(sx * 1.0, -0.05, 0.15, 0.25, n=10) for sx in (-1, 1)]
    return s


def _car(r: Rng) -> Strokes:
    style, w, wr = r.integers(3), r.uniform(1.6, 2.4), r.uniform(0.2, 0.3)
    if style == 1:  # seen from the front
        s = [_rect(-1, -0.8, 1, 0.2), _p(-0.8, -0.8, -0.6, -1.4, 0.6, -1.4, 0.8, -0.8)]
        s += [_ell(sx * 0.65, -0.35, 0.16, 0.12, n=8) for sx in (-1, 1)]
        s += [_rect(sx * 0.85 - 0.15, 0.2, sx * 0.85 + 0.15, 0.45) for sx in (-1, 1)]
        return s
    ch = r.uniform(0.35, 0.7) if style == 0 else r.uniform(0.9, 1.2)  # sedan or van
    c0, c1 = -w / 2 + r.uniform(0.2, 0.6), w / 2 - r.uniform(0.3, 0.8)
    s = [_p(-w / 2, 0, -w / 2, -0.45, w / 2, -0.45, w / 2, 0, -w / 2, 0),
         _p(c0, -0.45, c0 + 0.2, -0.45 - ch, c1 - 0.2, -0.45 - ch, c1, -0.45)]
    s += [_ell(x, 0, wr, wr, n=12) for x in (-w / 2 + 0.45, w / 2 - 0.45)]
    if r.random() < 0.5:  # side windows
        s.append(_p((c0 + c1) / 2, -0.45, (c0 + c1) / 2, -0.45 - ch))
    return s


def _flower(r: Rng) -> Strokes:
    style, k = r.integers(3), int(r.integers(4, 10))
    if style == 2:  # tulip: a cup with pointed top
        s = [_p(-0.5, -1.6, -0.25, -1.2, 0, -1.6, 0.25, -1.2, 0.5, -1.6, 0.45, -0.9, 0, -0.7,
                -0.45, -0.9, -0.5, -1.6)]
    else:
        c, pr = r.uniform(0.15, 0.3), r.uniform(0.3, 0.6)
        s = [_ell(0, -1.2, c, c, n=12)]
        for a in np.linspace(0, TAU, k, endpoint=False) + r.uniform(0, TAU):
            if style == 0:  # petals as loops
                q = _ell(c + pr, 0, pr, pr * 0.45, n=12)
            else:  # petals as little circles touching the centre
                q = _ell(c + pr * 0.6, 0, pr * 0.6, pr * 0.6, n=10)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            s.append(q @ rot.T + (0, -1.2))
    if r.random() < 0.75:  # stem and leaves
        s.append(_p(0, -0.7, r.uniform(-0.2, 0.2), 1.0))
        s += [_p(0, 0.2, sx * 0.5, -0.05, sx * 0.25, 0.3, 0, 0.2)
              for sx in (-1, 1) if r.random() < 0.5]
    return s


def _fish(r: Rng) -> Strokes:
    style, bl, bh = r.integers(3), r.uniform(0.8, 1.4), r.uniform(0.3, 0.7)
    if style == 1:  # "alpha" fish: one stroke whose ends cross to make the tail
        t = np.linspace(-0.8 * np.pi, 0.8 * np.pi, 24)
        body = np.column_stack((bl * np.cos(t), bh * np.sin(t)))
        return [np.vstack((_p(-bl - 0.5, bh), body, _p(-bl - 0.5, -bh))),
                _ell(bl * 0.5, -bh * 0.3, 0.06, 0.06, n=6)]
    if style == 2:  # round fish with stripes
        bl = bh = r.uniform(0.6, 0.9)
    s = [_ell(0, 0, bl, bh, n=24), _p(-bl, 0, -bl - 0.5, -0.4, -bl - 0.5, 0.4, -bl, 0),
         _ell(bl * 0.55, -bh * 0.25, 0.07, 0.07, n=6)]
    if style == 2:
        s += [_p(x, -bh * 0.8, x, bh * 0.8) for x in np.linspace(-0.4, 0.2, r.integers(1, 4))]
    if r.random() < 0.5:  # dorsal fin
        s.append(_p(-0.3, -bh * 0.95, 0, -bh - 0.35, 0.3, -bh * 0.95))
    return s


def _cloud(r: Rng) -> Strokes:
    rx, ry, bumps, depth = r.uniform(1.0, 1.6), r.uniform(0.35, 0.8), r.integers(3, 10), 0.3
    if r.random() < 0.3:  # flat bottom: bumps on the upper half only, closed by a line
        top = _bumpy(0, 0, rx, rx * ry, int(bumps), depth, np.pi, TAU)
        s = [np.vstack((top, top[:1]))]
    else:
        s = [_bumpy(0, 0, rx, rx * ry, int(bumps), depth)]
    if r.random() < 0.3:  # rain
        s += [_p(x, rx * 0.8, x - 0.1, rx * 0.8 + 0.4) for x in r.uniform(-rx, rx, 4)]
    return s


def _bird(r: Rng) -> Strokes:
    style = r.integers(3)
    if style == 0:  # flying, seen from afar: two arcs like an "m"
        w = r.uniform(0.6, 1.0)
        return [np.vstack((_ell(-w, 0, w, w * 0.5, np.pi, 2 * np.pi, 10),
                           _ell(w, 0, w, w * 0.5, np.pi, 2 * np.pi, 10)[1:]))]
    body = _ell(0, 0, 0.8, 0.45, n=20)
    head = _ell(0.85, -0.5, 0.3, 0.3, n=12)
    s = [body, head, _p(1.1, -0.55, 1.45, -0.45, 1.12, -0.4), _ell(0.9, -0.55, 0.04, 0.04, n=5)]
    if style == 1:  # perched: folded wing, tail, legs
        s += [_ell(-0.1, -0.05, 0.45, 0.2, 0.0, np.pi, 10),
              _p(-0.75, -0.1, -1.4, -0.3, -1.35, 0.1, -0.75, 0.1),
              _p(-0.1, 0.4, -0.15, 0.9), _p(0.15, 0.4, 0.15, 0.9)]
    else:  # flying: wings spread up
        span = r.uniform(0.8, 1.4)
        s += [_p(-0.3, -0.3, -0.5 - 0.3 * span, -0.4 - span, 0.25, -0.35)]
    return s


@dataclass(frozen=True)
class _Style:
    """How loosely a class is drawn."""

    rotation: float  # standard deviation of the drawing's rotation, radians
    stretch: float  # standard deviation of log(x scale / y scale)
    wobble: float  # per-vertex noise, fraction of the drawing's size
    offset: float  # per-stroke shift (imprecise joins), fraction of the drawing's size
    mirror: bool  # flip left-right half of the time
    clutter: float  # chance of a stroke being left out, and of scenery being added


_TIGHT = _Style(np.radians(4.0), stretch=0.05, wobble=0.008, offset=0.012, mirror=False, clutter=0)
_LOOSE = _Style(np.radians(20.0), stretch=0.2, wobble=0.015, offset=0.03, mirror=True, clutter=0.2)

_DIVERGENT = {"house": _house, "cat": _cat, "tree": _tree, "bicycle": _bicycle, "face": _face,
              "car": _car, "flower": _flower, "fish": _fish, "cloud": _cloud, "bird": _bird}

CONVERGENT: tuple[str, ...] = tuple(_CONVERGENT)
DIVERGENT: tuple[str, ...] = tuple(_DIVERGENT)
_CLASSES: dict[str, tuple[Callable[[Rng], Strokes], _Style]] = {
    **{name: (fn, _TIGHT) for name, fn in _CONVERGENT.items()},
    **{name: (fn, _LOOSE) for name, fn in _DIVERGENT.items()},
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
        keep.append(_p(lo[0] - m, hi[1] + 0.05 * size, hi[0] + m, hi[1] + 0.05 * size))
    if r.random() < p / 2:  # sun in an upper corner
        rad = r.uniform(0.1, 0.2) * size
        keep.append(_ell(r.choice([lo[0], hi[0]]), lo[1] - 1.5 * rad, rad, rad, n=10))
    return keep


def _humanise(strokes: Strokes, r: Rng, style: _Style) -> tuple[np.ndarray, np.ndarray]:
    """Jitter one drawing; return its points (P, 2) and each point's stroke number."""
    if style.clutter > 0:
        strokes = _clutter(strokes, r, style.clutter)
    pts = np.concatenate(strokes)
    ids = np.repeat(np.arange(len(strokes)), [len(s) for s in strokes])
    size = float(np.ptp(pts, axis=0).max()) or 1.0
    pts = pts + r.normal(0.0, style.offset * size, (len(strokes), 2))[ids]
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
