"""The article's third convergence measure: a per-class autoencoder's reconstruction loss.

A two-layer perceptron autoencoder, 784 -> hidden -> 784 with sigmoid units (the fully
connected kind LeCun et al. used), is trained on one class's drawings with the L2 loss and
scored on drawings it did not see.  A class whose drawings all look alike compresses well
through the narrow hidden layer (low loss: convergent); a class drawn every which way does not
(high loss: divergent).  The article found this measure less convincing than the entropy of the
average image; ``ffqueue data rank --ae`` lets you compare them.

Defaults are small so that 20 classes take seconds on a CPU.  Deterministic for a seed on a
given machine and thread count: the seed fixes the held-out split, the initial weights and the
batch order; torch's global random state is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ffqueue.data.quickdraw import PIXELS, list_categories, open_category
from ffqueue.data.rank import sample_drawings
from ffqueue.errors import DataError

DEFAULT_SAMPLE = 1000  # drawings per class: 800 to train on, 200 held out


@dataclass(frozen=True)
class AEConfig:
    """How each class's autoencoder is trained."""

    hidden: int = 64  # units in the bottleneck
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.003  # Adam
    holdout: float = 0.2  # fraction of the drawings scored, never trained on

    def __post_init__(self) -> None:
        if min(self.hidden, self.epochs, self.batch_size) < 1 or not self.lr > 0:
            raise DataError(f"autoencoder: hidden, epochs, batch_size and lr must be positive, "
                            f"got {self}")
        if not 0 < self.holdout < 1:
            raise DataError(f"autoencoder: holdout must lie in (0, 1), got {self.holdout}")


@dataclass(frozen=True)
class AEResult:
    test_loss: float  # mean squared error per pixel (pixels in [0, 1]) on held-out drawings
    initial_test_loss: float  # the same before any training
    train_losses: tuple[float, ...] = field(default=())  # mean training loss of each epoch
    n_train: int = 0
    n_test: int = 0


def build_autoencoder(hidden: int) -> nn.Sequential:
    """784 -> hidden -> 784, sigmoid after each layer (outputs are pixel intensities)."""
    return nn.Sequential(nn.Linear(PIXELS, hidden), nn.Sigmoid(),
                         nn.Linear(hidden, PIXELS), nn.Sigmoid())


@torch.no_grad()
def _loss(model: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    return float(nn.functional.mse_loss(model(x), x).item())


def train_autoencoder(drawings: np.ndarray, config: AEConfig | None = None,
                      seed: int = 0) -> AEResult:
    """Train an autoencoder on `drawings` ((N, 784) uint8) and score it on a held-out part."""
    config = config or AEConfig()
    x = np.asarray(drawings)
    if x.ndim != 2 or x.shape[1] != PIXELS or x.dtype != np.uint8:
        raise DataError(f"autoencoder: drawings must be (N, {PIXELS}) uint8, got "
                        f"{x.shape} {x.dtype}")
    n_test = round(len(x) * config.holdout)
    if n_test < 1 or len(x) - n_test < 1:
        raise DataError(f"autoencoder: {len(x)} drawings are too few to hold out "
                        f"{config.holdout:.0%} and train on the rest")
    order = np.random.default_rng(seed).permutation(len(x))
    data = torch.from_numpy(x[order].astype(np.float32) / 255.0)
    test, train = data[:n_test], data[n_test:]
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        model = build_autoencoder(config.hidden)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        shuffle = torch.Generator().manual_seed(seed)
        initial = _loss(model, test)
        losses = []
        for _ in range(config.epochs):
            model.train()
            perm = torch.randperm(len(train), generator=shuffle)
            total = 0.0
            for start in range(0, len(train), config.batch_size):
                batch = train[perm[start:start + config.batch_size]]
                loss = nn.functional.mse_loss(model(batch), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(train))
        return AEResult(test_loss=_loss(model, test), initial_test_loss=initial,
                        train_losses=tuple(losses), n_train=len(train), n_test=n_test)


def category_ae_loss(path: Path, sample: int = DEFAULT_SAMPLE, seed: int = 0,
                     config: AEConfig | None = None) -> float:
    """Held-out autoencoder loss of one numpy_bitmap file, on at most `sample` drawings."""
    path = Path(path)
    x = sample_drawings(open_category(path), sample, seed, path.stem)
    return train_autoencoder(x, config, seed).test_loss


def directory_ae_losses(directory: Path, categories: Sequence[str] | None = None,
                        sample: int = DEFAULT_SAMPLE, seed: int = 0,
                        config: AEConfig | None = None,
                        progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Autoencoder loss of each category of `directory` (all by default), in one process."""
    found = list_categories(Path(directory))
    names = list(found) if categories is None else list(categories)
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"directory {directory} lacks categories {missing}")
    out = {}
    for i, name in enumerate(names):
        out[name] = category_ae_loss(found[name], sample, seed, config)
        if progress is not None:
            progress(i + 1, len(names))
    return out
