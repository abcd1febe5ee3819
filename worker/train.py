"""The training loop: a plain function, no Celery and no database.

The whole mix lives on the device as two tensors; batches are slices of a random
permutation. Per-sample ``DataLoader`` indexing costs more than the small nets'
arithmetic (see DESIGN.md), so it is not used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ffqueue.errors import TrainingError
from ffqueue.specs import NUM_CLASSES
from ffqueue.sweeps import TrainConfig
from worker.nets import build_model

EVAL_BATCH = 4096  # samples per forward pass when evaluating


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's batches
    val_accuracy: float  # fraction in [0, 1]
    test_accuracy: float  # fraction in [0, 1]
    seconds: float  # wall time of the epoch, evaluation included


@dataclass
class TrainResult:
    epochs: list[EpochResult] = field(default_factory=list)
    confusion: list[list[int]] | None = None  # test set; rows are the true class
    state_dict: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0

    @property
    def final(self) -> EpochResult | None:
        return self.epochs[-1] if self.epochs else None


@dataclass(frozen=True)
class Split:
    """One mix's arrays as the loop needs them (uint8 images, int64 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @classmethod
    def of(cls, mix: Any) -> Split:
        return cls(mix.x_train, mix.y_train, mix.x_val, mix.y_val, mix.x_test, mix.y_test)


def to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    images = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=torch.float32)
    return images.div_(255.0), torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + EVAL_BATCH]).argmax(1) for i in range(0, len(x), EVAL_BATCH)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x) == y).float().mean().item())


def confusion_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[list[int]]:
    pred = predict(model, x)
    counts = torch.bincount(y * NUM_CLASSES + pred, minlength=NUM_CLASSES * NUM_CLASSES)
    return [[int(v) for v in row] for row in counts.view(NUM_CLASSES, NUM_CLASSES).tolist()]


def train(
    spec: list[dict[str, Any]],
    data: Split,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> TrainResult:
    """Train ``spec`` on one mix with Adam and cross-entropy; evaluate after every epoch.

    Deterministic on the CPU for a given seed: the seed fixes the initial weights,
    the batch order and dropout.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    model = build_model(spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    x_train, y_train = to_device(data.x_train, data.y_train, device)
    x_val, y_val = to_device(data.x_val, data.y_val, device)
    x_test, y_test = to_device(data.x_test, data.y_test, device)
    order = torch.Generator(device="cpu").manual_seed(seed)
    result = TrainResult()
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        model.train()
        permutation = torch.randperm(len(x_train), generator=order).to(device)
        total, batches = torch.zeros((), device=device), 0
        for start in range(0, len(permutation), config.batch_size):
            index = permutation[start:start + config.batch_size]
            loss = loss_fn(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
        train_loss = float(total.item()) / max(batches, 1)
        if not math.isfinite(train_loss):
            raise TrainingError(f"loss became {train_loss} in epoch {epoch}")
        metrics = EpochResult(epoch, train_loss, accuracy(model, x_val, y_val),
                              accuracy(model, x_test, y_test), time.perf_counter() - tick)
        result.epochs.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    result.confusion = confusion_matrix(model, x_test, y_test)
    result.state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    result.seconds = time.perf_counter() - started
    return result


def save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write weights atomically (tensors only, loadable with ``weights_only=True``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state_dict, tmp)
    tmp.replace(path)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)
