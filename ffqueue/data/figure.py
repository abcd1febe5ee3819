"""The article's picture of convergence: the average image of every class, side by side.

Two panels, convergent on the left and divergent on the right, each class's average image with
its name and the entropy of its normalised average above it.  matplotlib is imported inside the
function (Agg backend, no display needed), so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ffqueue.errors import DataError
from ffqueue.measures import normalized_entropy

COLUMNS = 5  # images per row within each panel


def _label(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def average_grid(averages: Mapping[str, np.ndarray], convergent: Sequence[str],
                 divergent: Sequence[str], out: Path, title: str | None = None,
                 dpi: int = 200) -> Path:
    """Draw the average images of `convergent` and `divergent` classes into a PNG at `out`.

    Each image is scaled to its own maximum (as the entropy measure does), dark ink on white.
    Within each panel the classes run from the lowest entropy to the highest.
    """
    missing = [c for c in [*convergent, *divergent] if c not in averages]
    if missing:
        raise DataError(f"figure: no average image for {missing}")
    if not convergent or not divergent:
        raise DataError("figure: need at least one convergent and one divergent class")
    entropy = {n: normalized_entropy(averages[n]) for n in [*convergent, *divergent]}
    convergent = sorted(convergent, key=entropy.__getitem__)
    divergent = sorted(divergent, key=entropy.__getitem__)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    rows = -(-max(len(convergent), len(divergent)) // COLUMNS)
    cols = min(COLUMNS, max(len(convergent), len(divergent)))
    fig: Figure = plt.figure(figsize=(2 * cols * 1.25 + 0.6, rows * 1.55 + 0.75),
                             layout="constrained")
    left, right = np.asarray(fig.subfigures(1, 2, wspace=0.04)).ravel()
    for panel, names, heading, colour in (
            (left, convergent, "Convergent (sharp average)", "#1f5fa8"),
            (right, divergent, "Divergent (blurry average)", "#b3401e")):
        panel.suptitle(heading, fontsize=11, fontweight="bold", color=colour)
        axes = np.atleast_2d(panel.subplots(rows, cols, squeeze=False))
        for ax in axes.ravel():
            ax.set_axis_off()
        for i, name in enumerate(names):
            avg = np.asarray(averages[name], dtype=np.float64).reshape(28, 28)
            peak = avg.max()
            ax = axes[i // cols, i % cols]
            ax.imshow(avg / peak if peak > 0 else avg, cmap="gray_r", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
            ax.set_title(f"{_label(name)}\nH = {entropy[name]:.2f}", fontsize=8,
                         linespacing=1.15, pad=3)
            # A thin frame in the panel's colour instead of ticks and spines.
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(0.6)
    if title:
        fig.suptitle(title, fontsize=11)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor="white")
    plt.close(fig)
    return out
