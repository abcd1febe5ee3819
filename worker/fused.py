"""Fused training: several runs of one architecture trained as one batched network.

Runs that share a spec, epochs and batch size (the 11 mixes of an architecture, its
seeds) keep their parameters stacked along a leading "member" dimension; fully
connected layers become batched matmuls (``baddbmm``) and convolutions one grouped
convolution (``groups = members``). One forward, one backward and one Adam step train
every member; Adam is elementwise, so one optimiser over the stacked tensors is
exactly one optimiser per member.

Each member keeps the random streams of its separate run (worker/train.py): initial
weights from its seed, its own batch order, its own dropout masks drawn with the
shapes its separate run uses. So a member's weights, metrics and confusion matrix
equal its separate run's up to float rounding (the batched kernels sum in another
order); tests/test_fused.py checks this.

Members are grouped by split sizes and by the epoch their checkpoints reached; each
group is trained on its own, so mixes of different sizes and partly trained runs are
fine (they simply fuse less).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ffqueue.errors import TrainingError
from ffqueue.specs import INPUT_SHAPE, parse_spec
from ffqueue.sweeps import TrainConfig
from worker.checkpoint import load_checkpoint, run_key, save_checkpoint
from worker.device import autocast
from worker.nets import dropout_mask
from worker.train import (
    EVAL_BATCH,
    EpochResult,
    Split,
    Streams,
    TrainResult,
    as_float,
    check_loss,
    confusion_of,
    initial_state,
    load_optimizer_state,
    make_optimizer,
    run_state,
)


@dataclass(frozen=True)
class Member:
    """One run of a fused job: its seed, its data, where it checkpoints."""

    seed: int
    data: Split
    checkpoint: Path | None = None
    key: str | None = None  # the run's checkpoint key (default: from spec, seed, config)


EpochCallback = Callable[[int, EpochResult], None]  # (member index, its metrics)


class FusedNet:
    """The forward pass of ``spec`` for M stacked members.

    Parameters come in the order of the separate network's ``parameters()``, each with
    a leading member dimension. Inputs are (M, B, 784); outputs (M, B, 10).
    """

    def __init__(self, spec: Sequence[dict[str, Any]]) -> None:
        self.layers = parse_spec(list(spec)).spec
        self.spatial = any(layer["type"] in ("conv", "pool") for layer in self.layers)

    def __call__(self, params: Sequence[torch.Tensor], x: torch.Tensor,
                 generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """``generators`` (one per member) switch dropout on; None is evaluation."""
        members, batch = x.shape[0], x.shape[1]
        weights = iter(params)
        channels = INPUT_SHAPE[0]
        flat = not self.spatial
        # Spatial layout: (B, M*C, H, W), member-major channels, as grouped conv wants.
        h = x if flat else x.transpose(0, 1).reshape(batch, members * channels,
                                                     *INPUT_SHAPE[1:])
        for layer in self.layers:
            kind = layer["type"]
            if kind == "conv":
                w, b = next(weights), next(weights)
                h = F.conv2d(h, w.flatten(0, 1), b.flatten(), layer["stride"],
                             layer["padding"], groups=members).relu_()
                channels = layer["filters"]
            elif kind == "pool":
                pool = F.max_pool2d if layer["kind"] == "max" else F.avg_pool2d
                h = pool(h, layer["size"])
            elif kind == "dropout":
                if generators is not None and layer["p"] > 0:
                    h = h * self._masks(h, layer["p"], generators, flat, channels)
            else:
                if not flat:
                    h, flat = self._flatten(h, members), True
                h = self._linear(h, next(weights), next(weights)).relu_()
        if not flat:
            h = self._flatten(h, members)
        return self._linear(h, next(weights), next(weights))

    @staticmethod
    def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))

    @staticmethod
    def _flatten(h: torch.Tensor, members: int) -> torch.Tensor:
        return h.reshape(h.shape[0], members, -1).transpose(0, 1)

    @staticmethod
    def _masks(h: torch.Tensor, p: float, generators: Sequence[torch.Generator], flat: bool,
               channels: int) -> torch.Tensor:
        """Each member's mask drawn with the shape its separate run draws it in."""
        if flat:  # (M, B, D): a member's activations are (B, D)
            return torch.stack([dropout_mask(tuple(h.shape[1:]), p, g, h) for g in generators])
        batch, _, height, width = h.shape
        shape = (batch, channels, height, width)
        return torch.stack([dropout_mask(shape, p, g, h) for g in generators], 1).flatten(1, 2)


def train_fused(
    spec: list[dict[str, Any]],
    members: Sequence[Member],
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
    on_epoch: EpochCallback | None = None,
    checkpoint_seconds: float = 0.0,
) -> list[TrainResult | TrainingError]:
    """Train every member; the result (or the error of a member whose loss diverged)
    per member, in order. ``on_epoch(i, metrics)`` follows each member's epochs, then
    its checkpoint is written (every ``checkpoint_seconds``), as in ``worker.train.train``."""
    device = device or torch.device("cpu")
    keys = [m.key or run_key(list(spec), m.seed, config.as_dict(), "") for m in members]
    states = [load_checkpoint(m.checkpoint, key) for m, key in zip(members, keys, strict=True)]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (member, state) in enumerate(zip(members, states, strict=True)):
        done = int(state["epoch"]) if state is not None else 0
        groups.setdefault((member.data.sizes, done), []).append(i)
    results: list[TrainResult | TrainingError] = [TrainResult() for _ in members]
    for indices in groups.values():
        group = _Group(spec, [members[i] for i in indices], [keys[i] for i in indices],
                       [states[i] for i in indices], config, device, precision,
                       checkpoint_seconds)

        def report(j: int, metrics: EpochResult, indices: list[int] = indices) -> None:
            if on_epoch is not None:
                on_epoch(indices[j], metrics)

        for j, outcome in enumerate(group.run(report)):
            results[indices[j]] = outcome
    return results


class _Group:
    """Members with equal split sizes and epochs done: one stacked network."""

    def __init__(self, spec: list[dict[str, Any]], members: list[Member], keys: list[str],
                 states: list[dict[str, Any] | None], config: TrainConfig,
                 device: torch.device, precision: str, checkpoint_seconds: float) -> None:
        self.members, self.keys, self.config = members, keys, config
        self.checkpoint_seconds = checkpoint_seconds
        self.device, self.precision = device, precision
        self.net = FusedNet(spec)
        self.results = [TrainResult() for _ in members]
        self.streams = [Streams.of(m.seed, device) for m in members]
        models = [initial_state(spec, m.seed) for m in members]
        for i, state in enumerate(states):
            if state is not None:
                models[i].load_state_dict(state["model"])
                self.streams[i].restore(state["rng"])
                self.results[i].epochs = [EpochResult(**e) for e in state["epochs"]]
                self.results[i].seconds = float(state["seconds"])
        self.names = [name for name, _ in models[0].named_parameters()]
        per_member = [dict(model.named_parameters()) for model in models]
        self.params = [nn.Parameter(torch.stack([p[name].detach() for p in per_member])
                                    .to(device)) for name in self.names]
        self.optimizer = make_optimizer(self.params, config)
        resumed = [s["optimizer"] for s in states if s is not None]
        if resumed:  # a group resumes all together or not at all: same epochs done
            load_optimizer_state(self.optimizer, _stack_adam(resumed))
        self.failed: dict[int, TrainingError] = {}

    def _stack(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs = [torch.from_numpy(getattr(m.data, f"x_{split}")) for m in self.members]
        ys = [torch.as_tensor(getattr(m.data, f"y_{split}"), dtype=torch.int64)
              for m in self.members]
        return torch.stack(xs).to(self.device), torch.stack(ys).to(self.device)

    def run(self, report: EpochCallback) -> list[TrainResult | TrainingError]:
        x_train, y_train = self._stack("train")
        x_val, y_val = self._stack("val")
        x_test, y_test = self._stack("test")
        start = len(self.results[0].epochs) + 1
        test_pred: torch.Tensor | None = None  # the last epoch's, for the confusion matrices
        unsaved = 0.0  # seconds trained since the last checkpoints
        for epoch in range(start, self.config.epochs + 1):
            tick = time.perf_counter()
            losses = self._epoch(x_train, y_train)
            val = self._accuracy(self._predict(x_val), y_val)
            test_pred = self._predict(x_test)
            test = self._accuracy(test_pred, y_test)
            seconds = time.perf_counter() - tick
            share = seconds / len(self.members)
            unsaved += seconds
            # The last epoch is written as the result; see worker.train.train for the rest.
            save = epoch < self.config.epochs and unsaved >= self.checkpoint_seconds
            if save:
                unsaved = 0.0
            for i, result in enumerate(self.results):
                if i in self.failed:
                    continue
                try:
                    check_loss(losses[i], epoch)
                except TrainingError as exc:  # this member diverged; the others go on
                    self.failed[i] = exc
                    continue
                metrics = EpochResult(epoch, losses[i], val[i], test[i], share)
                result.epochs.append(metrics)
                result.seconds += share
                report(i, metrics)
                if save:
                    self._checkpoint(i)
        if test_pred is None:  # resumed with no epoch left to train
            test_pred = self._predict(x_test)
        for i, result in enumerate(self.results):
            result.confusion = confusion_of(test_pred[i], y_test[i])
            result.state_dict = {name: p[i].detach().cpu().clone()
                                 for name, p in zip(self.names, self.params, strict=True)}
        return [self.failed.get(i, result) for i, result in enumerate(self.results)]

    def _epoch(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        members, n = y.shape
        rows = torch.arange(members, device=self.device).unsqueeze(1)
        order = torch.stack([s.permutation(n, self.device) for s in self.streams])
        generators = [s.dropout for s in self.streams]
        total, batches = torch.zeros(members, device=self.device), 0
        for start in range(0, n, self.config.batch_size):
            index = order[:, start:start + self.config.batch_size]
            with autocast(self.device, self.precision):
                logits = self.net(self.params, as_float(x[rows, index]), generators)
            # Each member's mean loss, as its separate run computes it; their sum has
            # each member's own gradient in its slice of the stacked parameters.
            loss = F.cross_entropy(logits.float().flatten(0, 1), y[rows, index].flatten(),
                                   reduction="none").view(members, -1).mean(1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.optimizer.step()
            total += loss.detach()
            batches += 1
        return (total / max(batches, 1)).tolist()

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return torch.cat([self.net(self.params, as_float(x[:, i:i + EVAL_BATCH])).argmax(2)
                              for i in range(0, x.shape[1], EVAL_BATCH)], dim=1)

    @staticmethod
    def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> list[float]:
        if y.shape[1] == 0:
            return [float("nan")] * y.shape[0]
        return (pred == y).float().mean(1).tolist()

    def _checkpoint(self, i: int) -> None:
        member = self.members[i]
        if member.checkpoint is None:
            return
        model = {name: p[i] for name, p in zip(self.names, self.params, strict=True)}
        adam = {index: {name: (value[i] if name != "step" else value)
                        for name, value in entry.items()}
                for index, entry in self.optimizer.state_dict()["state"].items()}
        save_checkpoint(member.checkpoint, run_state(
            self.keys[i], model, {k: {n: v.detach().cpu().clone() for n, v in e.items()}
                                  for k, e in adam.items()},
            self.streams[i].state(), self.results[i]))


def _stack_adam(states: list[dict[int, dict[str, torch.Tensor]]]) -> dict[int, Any]:
    """Members' Adam states as one: moments stacked, the shared step count kept."""
    return {index: {name: (entry[name] if name == "step"
                           else torch.stack([s[index][name] for s in states]))
                    for name in entry}
            for index, entry in states[0].items()}
