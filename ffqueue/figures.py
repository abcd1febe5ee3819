"""The article's figures as PNG files, from plain data (no database, no settings).

Each function takes arrays and dicts, draws one figure with matplotlib's object API
(no pyplot state, so it is safe in a worker thread) and writes it to ``path``.
Matplotlib is imported inside the functions: ``ffqueue --help`` must not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DPI = 160
KIND_COLOURS = {"convergent": "#2166ac", "divergent": "#d6604d", "other": "#7f7f7f"}
FAMILY_COLOURS = {"fully connected": "#4d4d4d", "CNN": "#1f77b4"}
STYLE: dict[str, Any] = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10.5, "legend.fontsize": 8.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6,
    "savefig.dpi": DPI, "figure.dpi": DPI, "savefig.bbox": "tight", "savefig.pad_inches": 0.08,
}
MIX_AXIS = "divergent classes in the mix (of 10)"
RHO = "\u03c1"  # Greek rho, written as an escape so that the source stays ASCII


@contextmanager
def _figure(width: float, height: float, **kwargs: Any) -> Iterator[Any]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield Figure(figsize=(width, height), layout="constrained", **kwargs)


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _suptitle(fig: Any, text: str, fontsize: float = 11) -> None:
    """A figure title wrapped to the figure's width, so a narrow figure stays narrow."""
    import textwrap

    chars = max(24, int(fig.get_figwidth() * 120 / fontsize))
    fig.suptitle("\n".join(textwrap.wrap(text, chars)), fontsize=fontsize)


def _placeholder(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_axis_off()


def average_images(images: Mapping[str, np.ndarray], convergent: Sequence[str],
                   divergent: Sequence[str], path: Path,
                   entropy: Mapping[str, float | None] | None = None) -> Path:
    """Average image of every convergent (top row) and divergent (bottom row) class."""
    columns = max(len(convergent), len(divergent), 1)
    with _figure(1.15 * columns + 1.0, 3.3) as fig:
        axes = fig.subplots(2, columns, squeeze=False)
        for row, (kind, names) in enumerate((("convergent", convergent),
                                             ("divergent", divergent))):
            for col in range(columns):
                ax = axes[row][col]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if col >= len(names) or names[col] not in images:
                    continue
                name = names[col]
                ax.imshow(images[name], cmap="gray_r", vmin=0, interpolation="nearest")
                ax.set_title(name, fontsize=9, color=KIND_COLOURS[kind], pad=2)
                value = (entropy or {}).get(name)
                if value is not None:
                    ax.set_xlabel(f"H = {value:.2f} bits", fontsize=8, labelpad=2)
            axes[row][0].set_ylabel(kind, fontsize=10.5, color=KIND_COLOURS[kind])
        _suptitle(fig, "Average images: convergent classes (mix_00) and divergent classes "
                       "(mix_10)")
        return _save(fig, path)


def fc_decay(curves: Mapping[str, Mapping[int, float]], params: Mapping[str, int],
             path: Path) -> Path:
    """Decay curves of the fully-connected nets: one line per net, perceptron in grey."""
    import matplotlib

    names = sorted(curves, key=lambda n: (params.get(n, 0), n))
    cmap = matplotlib.colormaps["viridis"]
    logs = [math.log10(max(params.get(n, 1), 1)) for n in names]
    low, high = (min(logs), max(logs)) if logs else (0.0, 1.0)
    with _figure(7.2, 4.2) as fig:
        ax = fig.subplots()
        if not names:
            _placeholder(ax, "no fully-connected nets in this sweep")
            return _save(fig, path)
        for name, log in zip(names, logs, strict=True):
            mixes = sorted(curves[name])
            values = [curves[name][m] for m in mixes]
            if name == "perceptron":
                style = {"color": "#8c8c8c", "linewidth": 2.6, "zorder": 3}
            else:
                shade = 0.1 + 0.8 * ((log - low) / (high - low) if high > low else 0.5)
                style = {"color": cmap(shade), "linewidth": 1.4}
            ax.plot(mixes, values, marker="o", markersize=3.5,
                    label=f"{name} ({params.get(name, 0):,} params)", **style)
        ax.set_xticks(range(11))
        ax.set_xlabel(MIX_AXIS)
        ax.set_ylabel("test accuracy")
        ax.set_title("Decay curves of the fully-connected nets")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  title="net (more parameters: lighter)", title_fontsize=8.5)
        return _save(fig, path)


def perceptron_weights(weights: Mapping[int, np.ndarray], classes: Mapping[int, Sequence[str]],
                       order: Sequence[str], kinds: Mapping[str, str], path: Path) -> Path:
    """Positive weights of the perceptron: a 28x28 tile per class (row) and mix (column).

    ``weights[mix]`` is the (10, 784) weight matrix trained on that mix, whose row i
    belongs to ``classes[mix][i]``. A class not in a mix leaves its tile grey. Each
    tile is scaled to its own maximum: the shape matters, not the magnitude. The tiles
    are composed into one RGB mosaic (one image, not hundreds of axes: fast).
    """
    import matplotlib

    cmap = matplotlib.colormaps["magma"]
    mixes = sorted(weights)
    side, gap = 28, 3
    step = side + gap
    rows, cols = max(len(order), 1), max(len(mixes), 1)
    mosaic = np.ones((rows * step - gap, cols * step - gap, 4))  # white gaps
    for r, name in enumerate(order):
        for c, mix in enumerate(mixes):
            y, x = r * step, c * step
            if name in classes[mix]:
                row = np.clip(weights[mix][list(classes[mix]).index(name)], 0, None)
                top = float(row.max()) or 1.0
                mosaic[y:y + side, x:x + side] = cmap(row.reshape(side, side) / top)
            else:
                mosaic[y:y + side, x:x + side] = (0.93, 0.93, 0.93, 1.0)
    with _figure(0.5 * cols + 1.6, 0.5 * rows + 1.0) as fig:
        ax = fig.subplots()
        ax.imshow(mosaic, interpolation="nearest")
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        centres = [i * step + side / 2 - 0.5 for i in range(max(rows, cols))]
        ax.set_xticks(centres[:len(mixes)], [f"{m:02d}" for m in mixes], fontsize=8)
        ax.xaxis.tick_top()
        ax.set_xlabel("mix (number of divergent classes)", fontsize=9)
        ax.xaxis.set_label_position("top")
        ax.set_yticks(centres[:len(order)], list(order), fontsize=8)
        for label, name in zip(ax.get_yticklabels(), order, strict=True):
            label.set_color(KIND_COLOURS.get(kinds.get(name, "other"), "black"))
        ax.tick_params(length=0)
        _suptitle(fig, "Perceptron: positive weights per class (rows; convergent blue, divergent "
                       "red) and mix (columns)", fontsize=10)
        return _save(fig, path)


def architecture_glyphs(archs: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """The nets as columns of colour-coded layers (first layer on top), by accuracy.

    Each item has ``architecture``, ``glyph`` (a colour per layer, output last) and
    ``max_accuracy``. Columns run from the lowest accuracy on the left to the highest.
    """
    from matplotlib.patches import Patch, Rectangle

    from ffqueue.specs import GLYPH_COLOURS

    ranked = sorted(archs, key=lambda a: (a["max_accuracy"] is None, a["max_accuracy"] or 0,
                                          a["architecture"]))
    n = max(len(ranked), 1)
    depth = max((len(a["glyph"]) for a in ranked), default=1)
    unit = 0.34 if n <= 20 else max(0.12, 7.0 / n)  # inches per column: square boxes
    labelled = n <= 30
    label_room = 1.9 if labelled else 0.4  # inches under the glyphs for their names
    with _figure(n * unit + 1.3, 1.3 + depth * unit + label_room + 0.7) as fig:
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={
            "height_ratios": [1.3, depth * unit]})
        if not ranked:
            _placeholder(bottom, "no architectures with results")
            top.set_axis_off()
            return _save(fig, path)
        xs = np.arange(len(ranked))
        accuracy = [a["max_accuracy"] or 0.0 for a in ranked]
        top.plot(xs, accuracy, color="#555555", linewidth=1.0, marker="o", markersize=3.5)
        top.set_ylabel("max\naccuracy")
        top.set_ylim(max(0.0, min(accuracy) - 0.03), min(1.0, max(accuracy) + 0.03))
        top.set_title("Architectures sorted by accuracy (first layer on top)")
        for x, arch in zip(xs, ranked, strict=True):
            for level, colour in enumerate(arch["glyph"]):
                bottom.add_patch(Rectangle((x - 0.42, -level - 0.92), 0.84, 0.84, color=colour,
                                           linewidth=0))
        bottom.set_xlim(-0.6, len(ranked) - 0.4)
        bottom.set_ylim(-depth - 0.05, 0.05)
        bottom.set_yticks([-i - 0.5 for i in range(depth)], [str(i + 1) for i in range(depth)],
                          fontsize=7.5)
        bottom.set_ylabel("layer")
        bottom.grid(False)
        bottom.tick_params(length=0)
        for spine in bottom.spines.values():
            spine.set_visible(False)
        if labelled:
            bottom.set_xticks(xs, [a["architecture"] for a in ranked], rotation=90, fontsize=7)
        else:
            bottom.set_xticks([])
            bottom.set_xlabel(f"{len(ranked)} nets, lowest accuracy on the left")
        names = {"conv": "convolution", "pool": "pooling", "dropout": "dropout",
                 "fc": "fully connected"}
        fig.legend(handles=[Patch(color=GLYPH_COLOURS[k], label=v) for k, v in names.items()],
                   loc="outside lower center", ncols=4, frameon=False, fontsize=8.5)
        return _save(fig, path)


def cnn_decay(curves: Mapping[str, Mapping[int, float]],
              fits: Mapping[str, tuple[float | None, float | None]], path: Path) -> Path:
    """Decay curves of the CNNs (left) and their least-squares lines (right), coloured
    by slope."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    slopes = [s for s, _ in fits.values() if s is not None]
    low, high = min(slopes, default=-1.0), max(slopes, default=0.0)
    if low == high:
        low, high = low - 0.01, high + 0.01
    norm = Normalize(low, high)
    cmap = matplotlib.colormaps["plasma"]
    with _figure(9.0, 3.8) as fig:
        left, right = fig.subplots(1, 2, sharey=True)
        if not curves:
            _placeholder(left, "no CNNs in this sweep")
            right.set_axis_off()
            return _save(fig, path)
        for name in sorted(curves):
            slope, intercept = fits.get(name, (None, None))
            colour = cmap(norm(slope)) if slope is not None else "#999999"
            mixes = sorted(curves[name])
            left.plot(mixes, [curves[name][m] for m in mixes], color=colour, linewidth=1.0,
                      alpha=0.85, marker="o", markersize=2)
            if slope is not None and intercept is not None:
                x = np.arange(11)
                right.plot(x, intercept + slope * x / 10.0, color=colour, linewidth=1.2)
        left.set_title("Decay curves")
        right.set_title("Linear fits")
        for ax in (left, right):
            ax.set_xticks(range(0, 11, 2))
            ax.set_xlabel(MIX_AXIS)
        left.set_ylabel("test accuracy")
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=[left, right], pad=0.01)
        bar.set_label("decay slope (accuracy per unit divergent fraction)", fontsize=8.5)
        fig.suptitle(f"Decay of the {len(curves)} CNNs", fontsize=11)
        return _save(fig, path)


def _radius(depth: int) -> float:
    """Marker radius in points: grows linearly with depth (an offset keeps depth 1 visible)."""
    return 2.0 + 2.6 * depth


def _family_legend(ax: Any, families: set[str]) -> Any:
    """Which colour is which kind of net, outside the axes on the right (top)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="o", markersize=8, color=colour,
                      alpha=0.6, label=family) for family, colour in FAMILY_COLOURS.items()
               if family in families]
    # Figure legends "outside": constrained layout makes room for them.
    return ax.figure.legend(handles=handles, loc="outside right upper", frameon=False)


def _size_legend(ax: Any, title: str, entries: Sequence[tuple[float, str]]) -> Any:
    """Marker sizes (area in square points, label), outside the axes on the right (bottom)."""
    handles = [ax.scatter([], [], s=area, facecolor="none", edgecolor="#333333", label=label)
               for area, label in entries]
    return ax.figure.legend(handles=handles, title=title, loc="outside right lower",
                            frameon=False, labelspacing=1.4, borderpad=0.6, fontsize=8,
                            title_fontsize=8.5)


def _depth_legend(ax: Any, depths: Sequence[int]) -> Any:
    shown = sorted(set(depths))
    if len(shown) > 4:
        shown = sorted({shown[0], shown[len(shown) // 2], shown[-1]})
    return _size_legend(ax, "depth", [(_radius(d) ** 2, str(d)) for d in shown])


def accuracy_vs_decay(points: Sequence[Mapping[str, Any]], path: Path,
                      threshold: float | None = None) -> Path:
    """Max accuracy against decay slope, marker radius proportional to depth.

    With ``threshold``, only nets above that accuracy, labelled by name when few.
    """
    shown = [p for p in points if p["slope"] is not None and p["max_accuracy"] is not None
             and (threshold is None or p["max_accuracy"] >= threshold)]
    with _figure(7.2, 4.6) as fig:
        ax = fig.subplots()
        title = "Max accuracy against decay"
        if threshold is not None:
            title += f" (accuracy ≥ {threshold:g})"
        ax.set_title(title)
        if not shown:
            _placeholder(ax, "no net above the threshold" if threshold is not None
                         else "no fitted nets")
            return _save(fig, path)
        for family, colour in FAMILY_COLOURS.items():
            group = [p for p in shown if p.get("family") == family]
            if group:
                ax.scatter([p["slope"] for p in group], [p["max_accuracy"] for p in group],
                           s=[_radius(p["depth"]) ** 2 for p in group], color=colour, alpha=0.55,
                           edgecolor="white", linewidth=0.6, label=family)
        if threshold is not None and len(shown) <= 25:
            for p in shown:
                ax.annotate(p["architecture"], (p["slope"], p["max_accuracy"]), fontsize=6.5,
                            xytext=(4, 3), textcoords="offset points", color="#333333")
        ax.set_xlabel("decay slope (accuracy per unit divergent fraction; 0 = no decay)")
        ax.set_ylabel("max test accuracy")
        _family_legend(ax, {p.get("family", "") for p in shown})
        _depth_legend(ax, [p["depth"] for p in shown])
        return _save(fig, path)


def params_vs_decay(points: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Parameters (log scale) against decay slope; marker size grows with max accuracy."""
    shown = [p for p in points if p["slope"] is not None and p["max_accuracy"] is not None]
    with _figure(7.2, 4.4) as fig:
        ax = fig.subplots()
        ax.set_title("Complexity against decay (marker size = max accuracy)")
        if not shown:
            _placeholder(ax, "no fitted nets")
            return _save(fig, path)
        acc = np.array([p["max_accuracy"] for p in shown])
        lo, hi = float(acc.min()), float(acc.max())

        def size(a: float) -> float:
            return 12 + 260 * ((a - lo) / (hi - lo) if hi > lo else 0.5)

        for family, colour in FAMILY_COLOURS.items():
            group = [p for p in shown if p.get("family") == family]
            if group:
                ax.scatter([p["params"] for p in group], [p["slope"] for p in group],
                           s=[size(p["max_accuracy"]) for p in group], color=colour, alpha=0.55,
                           edgecolor="white", linewidth=0.6, label=family)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale)")
        ax.set_ylabel("decay slope (0 = no decay)")
        _family_legend(ax, {p.get("family", "") for p in shown})
        _size_legend(ax, "max accuracy", [(size(a), f"{a:.2f}")
                                          for a in sorted({lo, (lo + hi) / 2, hi})])
        return _save(fig, path)


MEASURE_LABELS = {"difficulty": "empirical difficulty (1 \u2212 accuracy)",
                  "entropy": "entropy of the average image (bits)",
                  "pixel_variance": "pixel variance of the average image",
                  "ae_loss": "autoencoder L2 loss (per pixel, held out)"}
PANEL_TITLES = {"difficulty": "empirical difficulty", "entropy": "entropy",
                "pixel_variance": "pixel variance", "ae_loss": "autoencoder loss"}


def convergence_rankings(rows: Sequence[Mapping[str, Any]],
                         agreement: Mapping[str, tuple[float | None, float | None]],
                         path: Path) -> Path:
    """One panel per measure: the classes ranked by it, coloured convergent/divergent.

    ``agreement[measure]`` is (Spearman rho with difficulty, ROC AUC divergent vs
    convergent), shown in the panel's title.
    """
    from matplotlib.lines import Line2D

    measures = ["difficulty"] + [m for m in ("entropy", "pixel_variance", "ae_loss")
                                 if any(r.get(m) is not None for r in rows)]
    n_classes = max(len(rows), 1)
    with _figure(3.1 * len(measures) + 0.6, 0.2 * n_classes + 1.6) as fig:
        axes = fig.subplots(1, len(measures), squeeze=False)[0]
        for ax, measure in zip(axes, measures, strict=True):
            ranked = sorted((r for r in rows if r.get(measure) is not None),
                            key=lambda r: r[measure])
            ys = np.arange(len(ranked))
            # Dots, not bars: the axes need not start at zero, and bars would suggest it.
            ax.scatter([r[measure] for r in ranked], ys, s=30, zorder=3,
                       color=[KIND_COLOURS.get(r["kind"], "#7f7f7f") for r in ranked])
            ax.set_yticks(ys, [r["class"] for r in ranked], fontsize=7.5)
            for label, r in zip(ax.get_yticklabels(), ranked, strict=True):
                label.set_color(KIND_COLOURS.get(r["kind"], "#333333"))
            ax.set_ylim(-0.8, len(ranked) - 0.2)
            ax.margins(x=0.08)
            ax.set_xlabel(MEASURE_LABELS[measure], fontsize=8.5)
            rho, auc = agreement.get(measure, (None, None))
            parts = [] if measure == "difficulty" else [
                f"{RHO} = {rho:+.2f}" if rho is not None else f"{RHO} = n/a"]
            parts.append(f"AUC = {auc:.2f}" if auc is not None else "AUC = n/a")
            ax.set_title(f"{PANEL_TITLES[measure]}\n{', '.join(parts)}", fontsize=9.5)
        fig.legend(handles=[Line2D([], [], linestyle="none", marker="o", color=KIND_COLOURS[k],
                                   label=k) for k in ("convergent", "divergent")],
                   loc="outside lower center", ncols=2, frameon=False)
        fig.suptitle(f"Classes ranked by each measure ({RHO}: Spearman with difficulty; "
                     "AUC: divergent vs convergent)", fontsize=10.5)
        return _save(fig, path)
