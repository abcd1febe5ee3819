"""Convergence measures of QuickDraw-like classes, in plain numpy.

The article calls a class *convergent* when the average of its drawings is a sharp image and
*divergent* when that average is a blur.  Sharpness is measured by the Shannon entropy of the
average image's grey-level histogram: a sharp average has most pixels at exactly zero and a few
bright strokes (few occupied grey levels, low entropy), a blurry one spreads its pixels over many
grey levels (high entropy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ffqueue.errors import DataError

SIDE = 28
LEVELS = 256


def average_image(x: np.ndarray) -> np.ndarray:
    """Return the mean of drawings `x` as a (28, 28) float64 image.

    `x` is either (N, 784) as in QuickDraw's numpy_bitmap files or (N, 28, 28); N must be >= 1.
    """
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == SIDE * SIDE:
        x = x.reshape(-1, SIDE, SIDE)
    if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
        raise DataError(f"average_image: expected shape (N, 784) or (N, 28, 28), got {x.shape}")
    if x.shape[0] == 0:
        raise DataError("average_image: no drawings to average")
    # Accumulate in float64 so that thousands of uint8 images cannot overflow or lose precision.
    return np.asarray(x.mean(axis=0, dtype=np.float64))


def _check_image(avg: np.ndarray, what: str) -> np.ndarray:
    avg = np.asarray(avg, dtype=np.float64)
    if avg.size == 0:
        raise DataError(f"{what}: empty image")
    if not np.all(np.isfinite(avg)):
        raise DataError(f"{what}: image holds NaN or infinite values")
    if np.any(avg < 0):
        raise DataError(f"{what}: image holds negative values")
    return avg


def normalized_entropy(avg: np.ndarray) -> float:
    """Shannon entropy, in bits, of the 8-bit grey-level histogram of an average image.

    As in the article: the image is divided by its maximum, quantised to 8 bits, histogrammed
    into 256 bins, and the entropy of the bin frequencies is returned (0 log 0 = 0).  The result
    lies in [0, 8].

    Quantisation uses ``floor(v * 255)`` for v in [0, 1], so bin i holds values in
    [i/255, (i+1)/255) and only the maximum itself (v == 1) lands in bin 255.  Flooring rather
    than rounding keeps every non-zero fraction of ink below 1/255 in bin 0 together with the
    pure background, which is what an 8-bit image of the average would show.

    An all-zero image has no maximum to normalise by; it is a single grey level, entropy 0.0.
    """
    avg = _check_image(avg, "normalized_entropy")
    peak = float(avg.max())
    if peak == 0.0:
        return 0.0
    levels = np.floor(avg.ravel() / peak * (LEVELS - 1)).astype(np.int64)
    # Guard against v slightly above 1 after division rounding; it belongs to the top bin.
    levels = np.clip(levels, 0, LEVELS - 1)
    counts = np.bincount(levels, minlength=LEVELS)
    p = counts[counts > 0] / levels.size
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def pixel_variance(avg: np.ndarray) -> float:
    """Population variance (ddof=0) of an average image's pixels after dividing them by 255.

    A second, simpler sharpness measure: a sharp average has dark background and bright strokes
    (high variance), a blurry one is a uniform haze (low variance).
    """
    avg = _check_image(avg, "pixel_variance")
    return float(np.var(avg / 255.0))


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for telling positives from negatives.

    Computed as the Mann-Whitney statistic: the probability that a random positive scores higher
    than a random negative, a tie counting one half.  1.0 means every positive outscores every
    negative, 0.5 is chance.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    if s.shape != pos.shape:
        raise DataError(f"roc_auc: {s.size} scores but {pos.size} labels")
    if not np.all(np.isfinite(s)):
        raise DataError("roc_auc: scores hold NaN or infinite values")
    n_pos = int(pos.sum())
    n_neg = int(pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise DataError("roc_auc: needs at least one positive and one negative")
    # Mid-ranks: tied scores all get the mean of the ranks they occupy, which is exactly what
    # makes a positive-negative tie count one half.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
