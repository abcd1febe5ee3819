"""The training loop: a plain function, no Celery and no database.

The whole mix lives on the device as uint8 tensors (a quarter of float32's memory);
batches are slices of a random permutation, converted to floats as they are taken.
Per-sample ``DataLoader`` indexing costs more than the small nets' arithmetic (see
DESIGN.md), so it is not used.

Each run owns two random streams derived from its seed — the batch order and the
dropout masks — besides the global RNG that draws the initial weights. That makes a
run reproducible on its own, resumable from a checkpoint, and trainable fused with
others (worker/fused.py) with the same result.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ffqueue.data.mixes import Split
from ffqueue.errors import TrainingError
from ffqueue.specs import NUM_CLASSES
from ffqueue.sweeps import TrainConfig
from worker.checkpoint import load_checkpoint, run_key, save_checkpoint
from worker.device import autocast
from worker.nets import build_model, set_dropout_generator

EVAL_BATCH = 4096  # samples per forward pass when evaluating


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's batches
    val_accuracy: float  # fraction in [0, 1]
    test_accuracy: float  # fraction in [0, 1]
    seconds: float  # wall time of the epoch, evaluation included (fused: a member's share)


@dataclass
class TrainResult:
    epochs: list[EpochResult] = field(default_factory=list)
    confusion: list[list[int]] | None = None  # test set; rows are the true class
    state_dict: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0  # training time of all epochs, earlier attempts included

    @property
    def final(self) -> EpochResult | None:
        return self.epochs[-1] if self.epochs else None


def to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Images as stored (uint8 stays uint8), labels as int64, both on ``device``."""
    images = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return images, torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1]: uint8 drawings are divided by 255, float inputs kept as they are."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def stream_seed(seed: int, stream: str) -> int:
    """A seed for one of a run's random streams, independent of the others."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # manual_seed takes < 2**63


@dataclass
class Streams:
    """A run's private random streams: batch order on the CPU, dropout on its device."""

    order: torch.Generator
    dropout: torch.Generator

    @classmethod
    def of(cls, seed: int, device: torch.device) -> Streams:
        return cls(torch.Generator(device="cpu").manual_seed(stream_seed(seed, "order")),
                   torch.Generator(device=device).manual_seed(stream_seed(seed, "dropout")))

    def state(self) -> dict[str, torch.Tensor]:
        return {"order": self.order.get_state(), "dropout": self.dropout.get_state().cpu()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.order.set_state(state["order"])
        self.dropout.set_state(state["dropout"])

    def permutation(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, generator=self.order).to(device, non_blocking=True)


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Adam:
    """The article's Adam. The fused kernel (one pass over each tensor, not ~10) is the
    same arithmetic per element and cuts the optimiser's share of a small net's step."""
    return torch.optim.Adam(params, lr=config.lr, fused=True)


def initial_state(spec: list[dict[str, Any]], seed: int) -> nn.Sequential:
    """The run's network with its initial (Xavier) weights: a function of spec and seed."""
    torch.manual_seed(seed)
    return build_model(spec)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    model.eval()
    with autocast(x.device, precision):
        return torch.cat([model(as_float(x[i:i + EVAL_BATCH])).argmax(1)
                          for i in range(0, len(x), EVAL_BATCH)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32") -> float:
    if len(y) == 0:
        return float("nan")
    return fraction_right(predict(model, x, precision), y)


def fraction_right(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean().item()) if len(y) else float("nan")


def confusion_of(pred: torch.Tensor, y: torch.Tensor) -> list[list[int]]:
    counts = torch.bincount(y * NUM_CLASSES + pred, minlength=NUM_CLASSES * NUM_CLASSES)
    return [[int(v) for v in row] for row in counts.view(NUM_CLASSES, NUM_CLASSES).tolist()]


def confusion_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     precision: str = "fp32") -> list[list[int]]:
    return confusion_of(predict(model, x, precision), y)


def check_loss(train_loss: float, epoch: int) -> None:
    if not math.isfinite(train_loss):
        raise TrainingError(f"loss became {train_loss} in epoch {epoch}")


def train(
    spec: list[dict[str, Any]],
    data: Split,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    precision: str = "fp32",
    on_epoch: Callable[[EpochResult], None] | None = None,
    checkpoint: Path | None = None,
    key: str | None = None,
    checkpoint_seconds: float = 0.0,
) -> TrainResult:
    """Train ``spec`` on one mix with Adam and cross-entropy; evaluate after every epoch.

    Deterministic on the CPU for a given seed: the seed fixes the initial weights, the
    batch order and dropout. ``precision`` is ``fp32`` or ``bf16`` (autocast). With
    ``checkpoint``, the run's state is written there after an epoch (after ``on_epoch``
    has seen its metrics) once ``checkpoint_seconds`` of training have passed since the
    last checkpoint (0: after every epoch), and an existing checkpoint of the same run
    (``key``, default: from spec, seed and config) is resumed: ``on_epoch`` then sees
    only the epochs trained now, and the result has all of them.
    """
    device = device or torch.device("cpu")
    key = key or run_key(list(spec), seed, config.as_dict(), "")
    model = initial_state(spec, seed).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    streams = Streams.of(seed, device)
    set_dropout_generator(model, streams.dropout)
    result = TrainResult()
    state = load_checkpoint(checkpoint, key)
    if state is not None:
        model.load_state_dict(state["model"])
        load_optimizer_state(optimizer, state["optimizer"])
        streams.restore(state["rng"])
        result.epochs = [EpochResult(**e) for e in state["epochs"]]
        result.seconds = float(state["seconds"])
    x_train, y_train = to_device(data.x_train, data.y_train, device)
    x_val, y_val = to_device(data.x_val, data.y_val, device)
    x_test, y_test = to_device(data.x_test, data.y_test, device)
    loss_fn = nn.CrossEntropyLoss()
    test_pred: torch.Tensor | None = None  # the last epoch's, reused for the confusion matrix
    unsaved = 0.0  # seconds trained since the last checkpoint
    for epoch in range(len(result.epochs) + 1, config.epochs + 1):
        tick = time.perf_counter()
        model.train()
        permutation = streams.permutation(len(x_train), device)
        total, batches = torch.zeros((), device=device), 0
        for start in range(0, len(permutation), config.batch_size):
            index = permutation[start:start + config.batch_size]
            with autocast(device, precision):
                loss = loss_fn(model(as_float(x_train[index])), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().float()
            batches += 1
        train_loss = float(total.item()) / max(batches, 1)
        check_loss(train_loss, epoch)
        test_pred = predict(model, x_test, precision)
        metrics = EpochResult(epoch, train_loss, accuracy(model, x_val, y_val, precision),
                              fraction_right(test_pred, y_test), time.perf_counter() - tick)
        result.epochs.append(metrics)
        result.seconds += metrics.seconds
        if on_epoch is not None:
            on_epoch(metrics)
        unsaved += metrics.seconds
        # The last epoch needs none: its weights are written as the run's result next.
        # Epochs of milliseconds would spend more on checkpoints than on training; a
        # crash then redoes at most ``checkpoint_seconds`` of them.
        if checkpoint is not None and epoch < config.epochs and unsaved >= checkpoint_seconds:
            unsaved = 0.0
            save_checkpoint(checkpoint, run_state(key, model.state_dict(), optimizer_state(
                optimizer), streams.state(), result))
    if test_pred is None:  # resumed from a checkpoint with no epoch left to train
        test_pred = predict(model, x_test, precision)
    result.confusion = confusion_of(test_pred, y_test)
    result.state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return result


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, torch.Tensor]]:
    """Adam's per-parameter state (step, moments) by parameter index, on the CPU."""
    return {index: {name: value.detach().cpu() for name, value in entry.items()}
            for index, entry in optimizer.state_dict()["state"].items()}


def load_optimizer_state(optimizer: torch.optim.Optimizer,
                         state: dict[int, dict[str, torch.Tensor]]) -> None:
    """Restore the moments only; the hyper-parameters are this code's, not the file's."""
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def run_state(key: str, model: dict[str, torch.Tensor], optimizer: dict[int, Any],
              rng: dict[str, torch.Tensor], result: TrainResult) -> dict[str, Any]:
    """What a checkpoint holds after ``len(result.epochs)`` epochs."""
    return {"key": key, "epoch": len(result.epochs), "seconds": result.seconds,
            "model": {k: v.detach().cpu() for k, v in model.items()},
            "optimizer": optimizer, "rng": rng,
            "epochs": [asdict(e) for e in result.epochs]}


def save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write weights atomically (tensors only, loadable with ``weights_only=True``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state_dict, tmp)
    tmp.replace(path)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)
