"""A demo-sized sweep with known results, written straight into the database.

Real submission (scheduler.submit on the tiny mixes) makes the rows; results are then
filled in from a formula instead of training, so the analysis tests know the answer:
every class of an architecture has accuracy ``P_CONV[arch]`` when convergent and
``P_CONV[arch] - DROP[arch]`` when divergent, plus a small per-class offset, so
the test accuracy of mix k falls on a line of slope ``-DROP[arch]`` (per divergent
fraction) up to confusion-matrix rounding.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update

from ffqueue.db import session_scope
from ffqueue.models import Architecture, Dataset, Run, RunStatus, utcnow
from ffqueue.scheduler import submit
from ffqueue.settings import Settings
from ffqueue.sweeps import TrainConfig, make_definition

CNNS: list[list[dict[str, Any]]] = [
    [{"type": "conv", "filters": 16, "kernel": 3}, {"type": "pool", "size": 2},
     {"type": "fc", "units": 64}],
    [{"type": "conv", "filters": 8, "kernel": 5}, {"type": "dropout", "p": 0.25}],
    [{"type": "pool", "size": 2}, {"type": "conv", "filters": 4, "kernel": 3}],
    [{"type": "dropout", "p": 0.5}, {"type": "fc", "units": 32}],
    [{"type": "conv", "filters": 32, "kernel": 3}, {"type": "conv", "filters": 32, "kernel": 3},
     {"type": "pool", "size": 2}, {"type": "dropout", "p": 0.25}, {"type": "fc", "units": 128}],
    [{"type": "pool", "size": 4}, {"type": "dropout", "p": 0.1}, {"type": "fc", "units": 16}],
]
SEEDS = (0, 1)
TEST_PER_CLASS = 200


def expected_line(params: int, depth: int, has_conv: bool) -> tuple[float, float]:
    """(accuracy of a convergent class, drop for a divergent one) of an architecture."""
    p_conv = min(0.97, 0.55 + 0.06 * math.log10(params) + (0.08 if has_conv else 0.0))
    drop = max(0.05, 0.45 - 0.05 * math.log10(params) - 0.02 * depth)
    return p_conv, drop


def make_sweep(settings: Settings, mixes: Path, *, name: str = "demo", presets=("fc12",),
               cnns: list[list[dict[str, Any]]] | None = None, seeds=SEEDS,
               mix_indices: tuple[int, ...] = tuple(range(11))) -> int:
    """Submit a sweep on ``mixes`` (nothing is published); its id."""
    definition = make_definition(name=name, mixes_dir=mixes, presets=list(presets),
                                 specs=CNNS if cnns is None else cnns, seeds=list(seeds),
                                 mix_indices=list(mix_indices), train=TrainConfig(epochs=3))
    with session_scope(settings) as session:
        return submit(definition, session=session).sweep_id


def class_offset(name: str) -> float:
    """A fixed per-class nudge so that classes differ in difficulty."""
    return (sum(map(ord, name)) % 7 - 3) / 100.0


def confusion_for(accuracies: list[float], per_class: int) -> list[list[int]]:
    """A confusion matrix whose row i has round(acc_i * n) right, the rest on class i+1."""
    n = len(accuracies)
    matrix = [[0] * n for _ in range(n)]
    for i, acc in enumerate(accuracies):
        right = round(min(max(acc, 0.0), 1.0) * per_class)
        matrix[i][i] = right
        matrix[i][(i + 1) % n] = per_class - right
    return matrix


def finish(settings: Settings, sweep_id: int, *, where: Any = None, weights: bool = True,
           noise: float = 0.01) -> list[int]:
    """Mark runs of a sweep done with formula results (and perceptron weights); their ids."""
    rng = np.random.default_rng(sweep_id)
    now = utcnow()
    with session_scope(settings) as session:
        query = (select(Run, Architecture, Dataset).join(Architecture).join(Dataset)
                 .where(Run.sweep_id == sweep_id, Run.status != RunStatus.DONE)
                 .order_by(Run.id))
        if where is not None:
            query = query.where(where)
        rows = session.execute(query).all()
        updates = []
        perceptrons = []
        for i, (run, arch, dataset) in enumerate(rows):
            p_conv, drop = expected_line(arch.params, arch.depth,
                                         any(layer["type"] == "conv" for layer in arch.spec))
            k = dataset.mix_index
            jitter = float(rng.normal(0, noise)) if run.seed else 0.0
            accuracies = [p_conv - (drop if pos >= 10 - k else 0.0) + class_offset(name) + jitter
                          for pos, name in enumerate(dataset.classes)]
            # More test drawings than the tiny mixes hold: smooth curves, small rounding.
            confusion = confusion_for(accuracies, TEST_PER_CLASS)
            total = sum(map(sum, confusion))
            accuracy = sum(confusion[j][j] for j in range(10)) / total
            updates.append({"id": run.id, "status": RunStatus.DONE, "attempts": 1,
                            "epochs_done": 3, "test_accuracy": accuracy,
                            "val_accuracy": accuracy, "train_loss": 1.0 - accuracy,
                            "confusion": confusion, "train_seconds": 0.5 + arch.depth * 0.1,
                            "host": "node-a" if i % 2 else "node-b", "device": "cpu",
                            "torch_version": "2.13.0", "worker": f"node:{i % 2}",
                            "started_at": now - timedelta(seconds=2), "finished_at": now})
            if arch.spec == [] and weights:
                perceptrons.append((run.id, dataset.classes))
        if updates:
            session.execute(update(Run), updates)
    if perceptrons:
        from ffqueue.results import load_average_images

        every = sorted({name for _, classes in perceptrons for name in classes})
        images = load_average_images(mixes_of(settings, sweep_id), every)
        for run_id, classes in perceptrons:
            write_perceptron_weights(settings, run_id, classes, images)
    return [u["id"] for u in updates]


def mixes_of(settings: Settings, sweep_id: int) -> Path:
    from ffqueue.models import Sweep

    with session_scope(settings) as session:
        return Path(session.get_one(Sweep, sweep_id).mixes_dir)


def write_perceptron_weights(settings: Settings, run_id: int, classes: list[str],
                             images: dict[str, np.ndarray]) -> None:
    """Weights like a trained perceptron's: each class's average image minus the others'."""
    import torch

    from ffqueue.runner import weights_path

    stack = np.stack([images[c].ravel() / 255.0 for c in classes])
    weight = stack - stack.mean(axis=0, keepdims=True)
    path = weights_path(settings, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"0.weight": torch.tensor(weight, dtype=torch.float32),
                "0.bias": torch.zeros(10)}, path)
