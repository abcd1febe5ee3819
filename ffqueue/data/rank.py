"""Rank the categories of a directory by the article's convergence measures.

Every ``<category>.npy`` is memory-mapped and at most `sample` drawings are read from it (a
seeded random subset, read front to back), so the 345 QuickDraw categories -- 37 GB of
bitmaps -- rank in seconds.  The measures are those of `ffqueue.measures` on each category's
average image, and optionally the autoencoder loss of `worker.autoencoder`.

Each measure has a direction: high entropy, low pixel variance and high autoencoder loss mean
*divergent*.  `separation` turns a measure and two chosen lists into a ROC AUC: 1.0 when every
divergent class scores more divergent than every convergent one.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffqueue.data.quickdraw import list_categories, open_category
from ffqueue.errors import DataError
from ffqueue.measures import average_image, normalized_entropy, pixel_variance, roc_auc

DEFAULT_SAMPLE = 2000  # drawings per category: the average image is stable well before this
# Each measure and its sign: +1 when a larger value means more divergent.
MEASURES: dict[str, int] = {"entropy": +1, "pixel_variance": -1, "ae_loss": +1}


@dataclass(frozen=True)
class ClassMeasures:
    """The convergence measures of one category."""

    category: str
    drawings: int  # how many drawings the measures were computed from
    entropy: float  # of the normalised average image, bits
    pixel_variance: float  # of the average image scaled to [0, 1]
    ae_loss: float | None = None  # held-out L2 loss of a per-class autoencoder, if computed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_drawings(data: np.ndarray, limit: int, seed: int, name: str) -> np.ndarray:
    """At most `limit` rows of `data`, chosen at random (seeded by name), copied into memory.

    All rows when there are no more than `limit`.  The rows are read in file order, which is
    what a memory map reads fastest.
    """
    if limit < 1:
        raise DataError(f"sample must be >= 1, got {limit}")
    if len(data) <= limit:
        return np.array(data)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), 3]))
    return np.array(data[np.sort(rng.choice(len(data), size=limit, replace=False))])


def measure(name: str, drawings: np.ndarray) -> ClassMeasures:
    """Entropy and pixel variance of the average image of `drawings`."""
    avg = average_image(drawings)
    return ClassMeasures(category=name, drawings=len(drawings), entropy=normalized_entropy(avg),
                         pixel_variance=pixel_variance(avg))


def average_images(directory: Path, categories: Sequence[str] | None = None,
                   sample: int = DEFAULT_SAMPLE, seed: int = 0) -> dict[str, np.ndarray]:
    """The average image of each category (all of `directory`'s by default), from a sample."""
    found = list_categories(Path(directory))
    names = list(found) if categories is None else list(categories)
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"directory {directory} lacks categories {missing}")
    return {n: average_image(sample_drawings(open_category(found[n]), sample, seed, n))
            for n in names}


def measure_directory(directory: Path, sample: int = DEFAULT_SAMPLE, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None
                      ) -> list[ClassMeasures]:
    """Entropy and pixel variance of every category in `directory`, in name order.

    `progress(done, total)` is called after each category.
    """
    found = list_categories(Path(directory))
    out = []
    for i, (name, path) in enumerate(found.items()):
        out.append(measure(name, sample_drawings(open_category(path), sample, seed, name)))
        if progress is not None:
            progress(i + 1, len(found))
    return out


def with_ae_losses(measures: Sequence[ClassMeasures], losses: Mapping[str, float]
                   ) -> list[ClassMeasures]:
    """The same measures with `ae_loss` filled in where `losses` has the category."""
    return [ClassMeasures(m.category, m.drawings, m.entropy, m.pixel_variance,
                          losses.get(m.category, m.ae_loss)) for m in measures]


def divergence_score(m: ClassMeasures, key: str) -> float | None:
    """The measure `key` signed so that larger always means more divergent."""
    if key not in MEASURES:
        raise DataError(f"unknown measure {key!r} (known: {', '.join(MEASURES)})")
    value = getattr(m, key)
    return None if value is None else MEASURES[key] * float(value)


def ranking(measures: Sequence[ClassMeasures], key: str) -> list[str]:
    """Categories from most convergent to most divergent by measure `key`.

    Categories without a value for `key` are left out; ties keep name order.
    """
    scored = [(s, m.category) for m in measures if (s := divergence_score(m, key)) is not None]
    return [name for _, name in sorted(scored, key=lambda t: (t[0], t[1]))]


def pick_extremes(measures: Sequence[ClassMeasures], n: int = 10, key: str = "entropy"
                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The `n` most convergent and `n` most divergent categories by `key`.

    Convergent come most convergent first, divergent most divergent first, so mix_01 swaps
    the least convergent class for the most divergent one.
    """
    order = ranking(measures, key)
    if len(order) < 2 * n:
        raise DataError(f"need at least {2 * n} categories with a {key} to pick {n} + {n}, "
                        f"have {len(order)}")
    return tuple(order[:n]), tuple(reversed(order[-n:]))


def separation(measures: Sequence[ClassMeasures], convergent: Sequence[str],
               divergent: Sequence[str]) -> dict[str, float | None]:
    """ROC AUC of each measure for telling the divergent from the convergent classes.

    1.0: every divergent class scores more divergent than every convergent one; 0.5: chance.
    None for a measure that was not computed for all of the listed classes.
    """
    by_name = {m.category: m for m in measures}
    listed = [*convergent, *divergent]
    missing = [c for c in listed if c not in by_name]
    if missing:
        raise DataError(f"no measures for listed classes {missing}")
    out: dict[str, float | None] = {}
    for key in MEASURES:
        scores = [divergence_score(by_name[c], key) for c in listed]
        if any(s is None for s in scores):
            out[key] = None
            continue
        out[key] = roc_auc([float(s) for s in scores if s is not None],
                           [i >= len(convergent) for i in range(len(listed))])
    return out


def rank_rows(measures: Sequence[ClassMeasures], convergent: Sequence[str] = (),
              divergent: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per category, most convergent (lowest entropy) first.

    Each row has the measures, the category's 1-based rank by each computed measure
    (``rank_entropy`` …, 1 = most convergent) and ``set``: "convergent", "divergent" or None.
    """
    ranks = {key: {name: i + 1 for i, name in enumerate(ranking(measures, key))}
             for key in MEASURES}
    sets = {**{c: "convergent" for c in convergent}, **{d: "divergent" for d in divergent}}
    by_name = {m.category: m for m in measures}
    rows = []
    for name in ranking(measures, "entropy"):
        rows.append({**by_name[name].as_dict(),
                     **{f"rank_{k}": ranks[k].get(name) for k in MEASURES},
                     "set": sets.get(name)})
    return rows
