"""Decay and convergence analysis: pure functions on arrays, no database.

A model's *decay* is the slope of the least-squares line of its test accuracy on the
fraction of divergent classes in the mix (mix k → k/10). Negative slopes mean the
model does worse as classes get more divergent.

A class's *empirical difficulty* is one minus its per-class test accuracy, averaged
over every run of a sweep whose mix holds the class. The convergence measures
(entropy, pixel variance, autoencoder loss) are judged by how well they rank the
classes by that difficulty (Spearman) and separate the chosen convergent classes from
the divergent ones (ROC AUC).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ffqueue.measures import normalized_entropy, pixel_variance, roc_auc

N_MIXES = 11
MIN_MIXES_FOR_FIT = 3  # fewer points than this give no meaningful line
MEASURES = ("entropy", "pixel_variance", "ae_loss")  # columns of class_results


def divergent_fraction(mix_index: int) -> float:
    """mix_k holds k divergent classes out of 10."""
    return mix_index / 10.0


@dataclass(frozen=True)
class DecayFit:
    slope: float  # change in accuracy per unit of divergent fraction
    intercept: float  # accuracy the line predicts at mix_00
    r2: float  # coefficient of determination of the line
    stderr: float  # standard error of the slope
    n: int  # points fitted
    max_accuracy: float  # best accuracy over the fitted mixes
    partial: bool  # fewer than all 11 mixes were available


def fit_decay(mix_indices: Sequence[int], accuracies: Sequence[float | None]
              ) -> DecayFit | None:
    """Fit accuracy against divergent fraction; None when too few mixes are done."""
    x = np.array([divergent_fraction(m) for m in mix_indices], dtype=float)
    y = np.array([math.nan if a is None else a for a in accuracies], dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < MIN_MIXES_FOR_FIT or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    # A perfectly flat curve has no variance to explain: call the fit perfect.
    r2 = 1.0 if np.ptp(y) == 0 else float(fit.rvalue) ** 2
    stderr = float(fit.stderr) if math.isfinite(fit.stderr) else 0.0
    return DecayFit(slope=float(fit.slope), intercept=float(fit.intercept), r2=r2, stderr=stderr,
                    n=len(x), max_accuracy=float(y.max()),
                    partial=len(set(x.tolist())) < N_MIXES)


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    low: float  # lower bound of the confidence interval of the mean
    high: float
    n: int


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean over seeds with a Student-t confidence interval (zero width for one seed)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return SeedSummary(mean, mean, mean, len(v))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * stats.sem(v))
    return SeedSummary(mean, mean - half, mean + half, len(v))


@dataclass(frozen=True)
class ModelSummary:
    """One architecture over its seeds."""

    architecture: str
    seeds: int  # curves of this architecture
    fitted: int  # curves with a fit
    slope: SeedSummary | None  # over the fitted seeds; None when none was fitted
    max_accuracy: SeedSummary | None  # over every seed that has a point
    partial: bool  # some seed's curve lacks mixes


def summarize_seeds(architecture: str, slopes: Sequence[float | None],
                    max_accuracies: Sequence[float | None], partial: Sequence[bool],
                    confidence: float = 0.95) -> ModelSummary:
    """Mean and confidence interval of the decay and the best accuracy over seeds."""
    fitted = [s for s in slopes if s is not None]
    best = [a for a in max_accuracies if a is not None]
    return ModelSummary(
        architecture=architecture, seeds=len(slopes), fitted=len(fitted),
        slope=mean_interval(fitted, confidence) if fitted else None,
        max_accuracy=mean_interval(best, confidence) if best else None,
        partial=any(partial),
    )


def rankings(summaries: Sequence[ModelSummary]) -> dict[str, list[str]]:
    """Architectures by least decay (largest slope first) and by best accuracy.

    Slopes are usually negative, so the least decay is the slope closest to zero or
    above it. Architectures without a value come last, in name order.
    """
    def order(value: Any) -> list[str]:
        known = sorted((s for s in summaries if value(s) is not None),
                       key=lambda s: (-value(s), s.architecture))
        unknown = sorted(s.architecture for s in summaries if value(s) is None)
        return [s.architecture for s in known] + unknown

    return {
        "least_decay": order(lambda s: s.slope.mean if s.slope else None),
        "best_accuracy": order(lambda s: s.max_accuracy.mean if s.max_accuracy else None),
    }


# ---------------------------------------------------------------- classes


def class_accuracies(confusion: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Per-class test accuracy (recall) of one confusion matrix, rows = true class.

    A class with no test samples gets NaN: there is nothing to be right or wrong about.
    """
    m = np.asarray(confusion, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    totals = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(m) / totals, np.nan)


@dataclass(frozen=True)
class ClassAccuracy:
    accuracy: float  # mean per-class accuracy over the runs that hold the class
    runs: int  # runs averaged


def mean_class_accuracy(runs: Iterable[tuple[Sequence[str], Sequence[Sequence[int]]]]
                        ) -> dict[str, ClassAccuracy]:
    """Average each class's accuracy over runs, given (class names, confusion) per run."""
    seen: dict[str, list[float]] = defaultdict(list)
    for classes, confusion in runs:
        per_class = class_accuracies(confusion)
        if len(per_class) != len(classes):
            raise ValueError(f"{len(classes)} classes but a {len(per_class)}-row confusion")
        for name, value in zip(classes, per_class, strict=True):
            if math.isfinite(value):
                seen[name].append(float(value))
    return {name: ClassAccuracy(float(np.mean(v)), len(v)) for name, v in sorted(seen.items())}


def image_measures(avg: np.ndarray) -> dict[str, float]:
    """The image measures of one class from its average image."""
    return {"entropy": normalized_entropy(avg), "pixel_variance": pixel_variance(avg)}


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """Spearman's rank correlation and its two-sided p-value; None when undefined.

    Undefined with fewer than three pairs or when either side is constant.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    result = stats.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class MeasureAgreement:
    """How well one measure agrees with the empirical difficulty and the chosen groups."""

    measure: str
    classes: int  # classes with both the measure and a difficulty
    spearman: float | None  # rank correlation with difficulty (1 - accuracy)
    p_value: float | None
    auc: float | None  # P(a divergent class scores higher than a convergent one)


def measure_agreement(measure: str, values: Mapping[str, float | None],
                      difficulty: Mapping[str, float | None],
                      groups: Mapping[str, str]) -> MeasureAgreement:
    """Spearman of ``values`` with ``difficulty`` and ROC AUC of divergent vs convergent.

    ``groups`` maps a class to ``convergent``, ``divergent`` or anything else (ignored
    by the AUC). An AUC above 0.5 means the measure scores divergent classes higher;
    below 0.5, lower (pixel variance: sharp averages have more contrast).
    """
    known = {c: v for c, v in values.items() if v is not None and math.isfinite(v)}
    paired = [c for c in sorted(known) if difficulty.get(c) is not None]
    rho = spearman([known[c] for c in paired], [float(difficulty[c] or 0.0) for c in paired])
    labelled = [c for c in sorted(known) if groups.get(c) in ("convergent", "divergent")]
    positive = [groups[c] == "divergent" for c in labelled]
    auc = (roc_auc([known[c] for c in labelled], positive)
           if any(positive) and not all(positive) else None)
    return MeasureAgreement(measure=measure, classes=len(paired),
                            spearman=None if rho is None else rho[0],
                            p_value=None if rho is None else rho[1], auc=auc)


def rank_classes(values: Mapping[str, float | None], *, descending: bool = True) -> list[str]:
    """Class names ordered by a measure (most divergent-looking first); unknown last."""
    known = [c for c, v in values.items() if v is not None and math.isfinite(v)]
    ordered = sorted(known, key=lambda c: (-(values[c] or 0.0) if descending else values[c], c))
    return ordered + sorted(c for c in values if c not in known)


def eta_seconds(remaining: int, mean_seconds: float | None, parallel: int) -> float | None:
    """Time left for ``remaining`` runs of ``mean_seconds`` each on ``parallel`` workers."""
    if remaining <= 0:
        return 0.0
    if mean_seconds is None or not math.isfinite(mean_seconds):
        return None
    return remaining * mean_seconds / max(parallel, 1)
