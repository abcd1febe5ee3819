"""Convergence measures against hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ffqueue.errors import DataError
from ffqueue.measures import average_image, normalized_entropy, pixel_variance, roc_auc


def test_average_image_accepts_flat_and_square_drawings() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 784), dtype=np.uint8)
    flat = average_image(x)
    square = average_image(x.reshape(5, 28, 28))
    assert flat.shape == (28, 28) and flat.dtype == np.float64
    np.testing.assert_allclose(flat, x.reshape(5, 28, 28).astype(float).mean(axis=0))
    np.testing.assert_array_equal(flat, square)


def test_average_image_does_not_overflow_uint8() -> None:
    x = np.full((1000, 784), 255, dtype=np.uint8)
    assert np.all(average_image(x) == 255.0)


@pytest.mark.parametrize("bad", [np.zeros((0, 784)), np.zeros((3, 100)), np.zeros(784)])
def test_average_image_rejects_bad_shapes(bad: np.ndarray) -> None:
    with pytest.raises(DataError):
        average_image(bad)


def test_entropy_of_two_equally_common_values_is_one_bit() -> None:
    img = np.zeros((28, 28))
    img[:14] = 10.0
    assert normalized_entropy(img) == 1.0


def test_entropy_of_constant_and_empty_images_is_zero() -> None:
    assert normalized_entropy(np.full((28, 28), 7.0)) == 0.0
    assert normalized_entropy(np.zeros((28, 28))) == 0.0


def test_entropy_of_a_four_level_image() -> None:
    # Peak 256: the levels 64/256 and 128/256 land in bins floor(63.75) = 63 and
    # floor(127.5) = 127; the peak in bin 255.  Frequencies 1/8, 1/8, 1/4, 1/2 give
    # 3/8 + 3/8 + 1/2 + 1/2 = 1.75 bits.
    img = np.array([0.0, 64.0, 128.0, 128.0, 256.0, 256.0, 256.0, 256.0])
    assert normalized_entropy(img) == pytest.approx(1.75, abs=1e-12)


def test_entropy_quantises_by_flooring() -> None:
    # 2/512 * 255 = 0.996: floor puts it with the background (1 bit); rounding would not (1.5).
    img = np.array([0.0, 2.0, 512.0, 512.0])
    assert normalized_entropy(img) == 1.0


def test_entropy_of_all_256_levels_is_eight_bits() -> None:
    img = np.append(np.arange(255) + 0.5, 255.0)  # one pixel in every bin
    assert normalized_entropy(img) == pytest.approx(8.0, abs=1e-12)


def test_entropy_rejects_negative_or_nan() -> None:
    with pytest.raises(DataError):
        normalized_entropy(np.array([1.0, -1.0]))
    with pytest.raises(DataError):
        normalized_entropy(np.array([1.0, np.nan]))


def test_sharp_average_has_lower_entropy_than_blurry_one() -> None:
    sharp = np.zeros((28, 28))
    sharp[10:18, 10:18] = 255.0
    yy, xx = np.mgrid[:28, :28]
    blurry = 255.0 * np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 60.0)
    assert normalized_entropy(sharp) < normalized_entropy(blurry)
    assert pixel_variance(sharp) > pixel_variance(blurry)


def test_pixel_variance() -> None:
    img = np.zeros((28, 28))
    img[:, :14] = 255.0
    assert pixel_variance(img) == pytest.approx(0.25)
    assert pixel_variance(np.full((28, 28), 99.0)) == 0.0


def test_roc_auc_small_cases() -> None:
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs won.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # A tie counts half: (0.5 + 1) / 2.
    assert roc_auc([1.0, 1.0, 2.0], [True, False, True]) == 0.75
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert roc_auc([5, 5, 5, 5], [True, False, True, False]) == 0.5


def test_roc_auc_matches_pairwise_count() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, size=40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    expected = wins / (len(pos) * len(neg))
    assert roc_auc(scores.tolist(), positive.tolist()) == pytest.approx(expected)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(DataError):
        roc_auc([1.0, 2.0], [True, True])
    with pytest.raises(DataError):
        roc_auc([1.0, 2.0], [True])


# --- the autoencoder loss (torch, in worker/) --------------------------------------------


def _strokes(n: int, seed: int) -> np.ndarray:
    """Drawings of one simple class: a horizontal bar at a slightly varying height."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, row in enumerate(rng.integers(10, 18, size=n)):
        x[i, row, 4:24] = 255
    return x.reshape(n, 784)


def test_autoencoder_loss_decreases_with_training() -> None:
    from worker.autoencoder import AEConfig, train_autoencoder

    x = _strokes(200, 0)
    short = train_autoencoder(x, AEConfig(epochs=1), seed=0)
    long = train_autoencoder(x, AEConfig(epochs=8), seed=0)
    assert (short.n_train, short.n_test) == (160, 40)
    assert long.train_losses[-1] < long.train_losses[0]
    assert long.test_loss < short.test_loss < short.initial_test_loss
    assert long.initial_test_loss == short.initial_test_loss  # same seed, same start


def test_autoencoder_is_deterministic_and_leaves_the_global_seed_alone() -> None:
    import torch

    from worker.autoencoder import AEConfig, train_autoencoder

    x, config = _strokes(100, 1), AEConfig(epochs=2, hidden=16)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = train_autoencoder(x, config, seed=5)
    after = torch.rand(3)
    assert torch.equal(before, after)
    assert train_autoencoder(x, config, seed=5) == a
    assert train_autoencoder(x, config, seed=6).test_loss != a.test_loss


def test_autoencoder_rejects_bad_input() -> None:
    from worker.autoencoder import AEConfig, train_autoencoder

    with pytest.raises(DataError, match="uint8"):
        train_autoencoder(np.zeros((10, 784)), AEConfig())
    with pytest.raises(DataError, match="too few"):
        train_autoencoder(_strokes(2, 0), AEConfig())
    with pytest.raises(DataError, match="holdout"):
        AEConfig(holdout=1.0)


def test_ae_loss_task_runs_the_plain_function_on_the_analysis_queue(tmp_path) -> None:
    from ffqueue.celery_app import ANALYSIS_QUEUE, celery_config
    from ffqueue.settings import load_settings
    from ffqueue.tasks import ae_loss
    from worker.autoencoder import AEConfig, category_ae_loss

    np.save(tmp_path / "bar.npy", _strokes(50, 2))
    result = ae_loss.apply(kwargs={"source_dir": str(tmp_path), "category": "bar",
                                   "sample": 50, "epochs": 2}).get()
    expected = category_ae_loss(tmp_path / "bar.npy", sample=50, config=AEConfig(epochs=2))
    assert result == {"category": "bar", "ae_loss": expected}
    routes = celery_config(load_settings(home=tmp_path))["task_routes"]
    assert routes["ffqueue.ae_loss"] == {"queue": ANALYSIS_QUEUE}
