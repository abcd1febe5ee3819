"""Stroke templates of the 20 synthetic doodle classes, before any "humanising".

Each drawer takes a random generator and returns a list of strokes: (P, 2) float polylines,
x to the right and y down, in arbitrary units (the renderer normalises the bounding box).
`ffqueue.data.doodles` jitters, warps and renders them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TAU = 2.0 * np.pi

Strokes = list[np.ndarray]
Rng = np.random.Generator


def polyline(*xy: float) -> np.ndarray:
    """A polyline from flat x, y pairs."""
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


def ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = TAU,
            n: int = 20) -> np.ndarray:
    """An elliptic arc (a full ellipse by default)."""
    t = np.linspace(a0, a1, n)
    return np.column_stack((cx + rx * np.cos(t), cy + ry * np.sin(t)))


_p, _ell = polyline, ellipse  # short names: the templates use them on every line


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return _p(x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)


def _bumpy(cx: float, cy: float, rx: float, ry: float, bumps: int, depth: float,
           a0: float = 0.0, a1: float = TAU) -> np.ndarray:
    """A scalloped outline (clouds, tree crowns), closed unless an arc a0..a1 is asked for."""
    t = np.linspace(a0, a1, int(8 * bumps * (a1 - a0) / TAU) + 1)
    r = 1.0 + depth * np.abs(np.sin(bumps * t / 2.0))
    return np.column_stack((cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)))


# --- convergent classes: one template each, drawn with natural variation -----------------
# Each keeps its parts and proportions (so the average image stays sharp), but the proportions
# vary a little per drawing and a few drawings are sloppy in the ways players are: a circle left
# open, a shaky line, a shallow zigzag, an arrow with a tiny head, a full moon, a star drawn as
# a plus.  Those make near neighbours (circle, moon; line, zigzag, arrow; star, cross)
# genuinely confusable now and then, as in QuickDraw, sometimes beyond telling apart.


def _circle(r: Rng) -> Strokes:
    a = r.uniform(0.0, TAU)  # people start anywhere and overshoot the closing point slightly
    turn = r.uniform(0.6, 0.9) if r.random() < 0.2 else r.uniform(1.0, 1.12)  # some stay open
    return [_ell(0, 0, 1, r.uniform(0.85, 1.0), a, a + TAU * turn, 28)]


def _square(r: Rng) -> Strokes:
    w = r.uniform(0.8, 1.0)
    if r.random() < 0.2:  # drawn as two strokes, corners not quite meeting
        g = r.uniform(0.0, 0.15)
        return [_p(-w, -1 + g, -w, 1, w, 1 - g), _p(-w + g, -1, w, -1, w, 1 - g)]
    return [_rect(-w, -1, w, 1)]


def _triangle(r: Rng) -> Strokes:
    apex, h = r.normal(0.0, 0.12), r.uniform(0.75, 1.0)
    return [_p(apex, -1, 1, h, -1, h, apex, -1)]


def _star(r: Rng) -> Strokes:
    twinkle = r.random()
    if twinkle < 0.05:  # a twinkle of two crossing lines: no different from a cross
        return [_p(0, -1, 0, 1), _p(-0.8, 0, 0.8, 0)]
    if twinkle < 0.12:  # a twinkle like an asterisk
        return [_p(0, -1, 0, 1), _p(-0.9, -0.45, 0.9, 0.45), _p(-0.9, 0.45, 0.9, -0.45)]
    if r.random() < 0.3:  # the one-stroke pentagram: its lines cross inside
        t = -np.pi / 2 + np.arange(6) * 2 * TAU / 5
        return [np.column_stack((np.cos(t), np.sin(t)))]
    t = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)
    inner = r.uniform(0.35, 0.5)
    radius = np.where(np.arange(11) % 2, inner, 1.0)[:, None]
    return [np.column_stack((np.cos(t), np.sin(t))) * radius]


def _line(r: Rng) -> Strokes:
    bow = r.normal(0.0, 0.06)  # a hand-drawn line bends a little
    if r.random() < 0.06:  # a shaky hand: as wavy as a shallow zigzag
        x = np.linspace(-1, 1, int(r.integers(7, 12)))
        return [np.column_stack((x, r.uniform(0.05, 0.1) * (-1.0) ** np.arange(x.size)))]
    x = np.linspace(-1, 1, 9)
    return [np.column_stack((x, bow * (1 - x ** 2)))]


def _zigzag(r: Rng) -> Strokes:
    n, amp = int(r.integers(7, 12)), r.uniform(0.07, 0.35)
    x = np.linspace(-1, 1, n)
    return [np.column_stack((x, amp * (-1.0) ** np.arange(1, n + 1)))]


def _cross(r: Rng) -> Strokes:
    cy = r.uniform(-0.4, 0.0) if r.random() < 0.3 else 0.0  # sometimes a Latin cross
    arm = r.uniform(0.7, 1.0)
    return [_p(0, -1, 0, 1), _p(-arm, cy, arm, cy)]


def _envelope(r: Rng) -> Strokes:
    w, h, flap = r.uniform(1.15, 1.25), r.uniform(0.72, 0.78), r.uniform(0.55, 0.7)
    if r.random() < 0.1:  # an open envelope: the flap stands up above the body
        return [_rect(-w, -h, w, h), _p(-w, -h, 0, -h - flap * h * 1.5, w, -h)]
    return [_rect(-w, -h, w, h), _p(-w, -h, 0, -h + 2 * flap * h, w, -h)]


def _arrow(r: Rng) -> Strokes:
    if r.random() < 0.2:  # a hurried arrow: the head is a flick, barely more than a line
        head, spread = r.uniform(0.08, 0.15), r.uniform(0.06, 0.12)
    else:
        head, spread = r.uniform(0.2, 0.5), r.uniform(0.25, 0.45)
    tip = _p(1 - head, -spread, 1, 0, 1 - head, spread)
    if r.random() < 0.2:  # a closed, triangular head
        tip = np.vstack((tip, tip[:1]))
    return [_p(-1, 0, 1, 0), tip]


def _moon(r: Rng) -> Strokes:
    # The inner arc's bulge: a crescent, thin or fat; now and then a gibbous moon, whose
    # "inner" arc bulges outwards and nearly closes a circle, or a full moon: a circle.
    phase = r.random()
    if phase < 0.06:
        return _circle(r)
    depth = r.uniform(-0.85, -0.5) if phase < 0.2 else r.uniform(0.25, 0.65)
    return [np.vstack((_ell(0, 0, 1, 1, np.pi / 2, 1.5 * np.pi, 16),
                       _ell(0, 0, depth, 1, 1.5 * np.pi, np.pi / 2, 12)[1:]))]


CONVERGENT_SHAPES: dict[str, Callable[[Rng], Strokes]] = {
    "circle": _circle, "square": _square, "triangle": _triangle, "star": _star, "line": _line,
    "zigzag": _zigzag, "cross": _cross, "envelope": _envelope, "arrow": _arrow, "moon": _moon,
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


DIVERGENT_SHAPES: dict[str, Callable[[Rng], Strokes]] = {
    "house": _house, "cat": _cat, "tree": _tree, "bicycle": _bicycle, "face": _face, "car": _car,
    "flower": _flower, "fish": _fish, "cloud": _cloud, "bird": _bird,
}
