"""Decay analysis: pure functions on arrays, no database.

A model's *decay* is the slope of the least-squares line of its test accuracy on the
fraction of divergent classes in the mix (mix k → k/10). Negative slopes mean the
model does worse as classes get more divergent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_MIXES_FOR_FIT = 3  # fewer points than this give no meaningful line


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


def fit_decay(mix_indices: Sequence[int], accuracies: Sequence[float]) -> DecayFit | None:
    """Fit accuracy against divergent fraction; None when too few mixes are done."""
    x = np.array([divergent_fraction(m) for m in mix_indices], dtype=float)
    y = np.asarray(accuracies, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < MIN_MIXES_FOR_FIT or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    # A perfectly flat curve has no variance to explain: call the fit perfect.
    r2 = 1.0 if np.ptp(y) == 0 else float(fit.rvalue) ** 2
    stderr = float(fit.stderr) if math.isfinite(fit.stderr) else 0.0
    return DecayFit(slope=float(fit.slope), intercept=float(fit.intercept), r2=r2, stderr=stderr,
                    n=len(x), max_accuracy=float(y.max()), partial=len(set(x.tolist())) < 11)


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
