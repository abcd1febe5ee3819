"""(a) Training throughput of the engine against the plain PyTorch loop, per architecture,
and (c) fused against separate training.

Both sides train the same architectures on the same mix for the same epochs with the
same seeds, in this process, interleaved architecture by architecture so that load
from other processes hits both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from bench.common import (
    Clock,
    RunOutcome,
    markdown,
    plain_train,
    training_flops,
)
from ffqueue.specs import Architecture
from ffqueue.sweeps import TrainConfig
from worker.fused import Member, train_fused
from worker.train import Split, train


def engine_train(arch: Architecture, data: Split, config: TrainConfig, seed: int,
                 precision: str, device: torch.device | None = None) -> RunOutcome:
    clock = Clock()
    result = train(arch.layers, data, config, seed=seed, precision=precision, device=device)
    final = result.final
    return RunOutcome(clock.wall(), final.test_accuracy if final else 0.0, clock.cpu())


def throughput(archs: Sequence[Architecture], data: Split, config: TrainConfig, *,
               precisions: Sequence[str], repeats: int = 1, seed: int = 0,
               device: torch.device | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-architecture rows and a total row: samples/s of each side (best wall time of
    ``repeats``), speed-ups in wall and in CPU time, test accuracy, achieved GFLOP/s."""
    samples = len(data.y_train) * config.epochs
    kinds = ["plain", *precisions]
    rows: list[dict[str, Any]] = []
    wall_total = dict.fromkeys(kinds, 0.0)
    cpu_total = dict.fromkeys(kinds, 0.0)
    accuracy: dict[str, list[float]] = {k: [] for k in kinds}
    flops_total = 0.0
    for arch in archs:
        warm = TrainConfig(epochs=1, batch_size=config.batch_size)
        plain_train(arch.layers, data, warm, seed, device)  # first-use costs: kernels,
        engine_train(arch, data, warm, seed, precisions[-1], device)  # allocations, autotuning
        runs: dict[str, list[RunOutcome]] = {k: [] for k in kinds}
        for _ in range(repeats):  # interleaved, so that outside load hits every side
            runs["plain"].append(plain_train(arch.layers, data, config, seed, device))
            for precision in precisions:
                runs[precision].append(engine_train(arch, data, config, seed, precision,
                                                    device))
        wall = {k: min(r.seconds for r in v) for k, v in runs.items()}
        cpu = {k: min(r.cpu for r in v) for k, v in runs.items()}
        flops = training_flops(arch, data, config.epochs)
        flops_total += flops
        row: dict[str, Any] = {"architecture": arch.text, "MMACs": arch.macs / 1e6}
        for kind in kinds:
            wall_total[kind] += wall[kind]
            cpu_total[kind] += cpu[kind]
            accuracy[kind].append(runs[kind][-1].test_accuracy)
        rows.append(_row(row, samples, flops, wall, cpu,
                         {k: runs[k][-1].test_accuracy for k in kinds}, precisions))
    summary = _row({"architecture": f"**all {len(archs)}**",
                    "MMACs": sum(a.macs for a in archs) / 1e6},
                   samples * len(archs), flops_total, wall_total, cpu_total,
                   {k: statistics.fmean(v) for k, v in accuracy.items()}, precisions)
    return rows, summary


def _row(row: dict[str, Any], samples: int, flops: float, wall: dict[str, float],
         cpu: dict[str, float], accuracy: dict[str, float],
         precisions: Sequence[str]) -> dict[str, Any]:
    row["plain samples/s"] = samples / wall["plain"]
    row["plain acc"] = accuracy["plain"]
    row["plain GFLOP/s"] = flops / wall["plain"] / 1e9
    for precision in precisions:
        row[f"{precision} samples/s"] = samples / wall[precision]
        row[f"{precision} speed-up"] = wall["plain"] / wall[precision]
        row[f"{precision} speed-up (CPU time)"] = cpu["plain"] / cpu[precision]
        row[f"{precision} acc"] = accuracy[precision]
        row[f"{precision} GFLOP/s"] = flops / wall[precision] / 1e9
    return row


def throughput_table(rows: list[dict[str, Any]], summary: dict[str, Any],
                     precisions: Sequence[str]) -> str:
    columns = ["architecture", "MMACs", "plain samples/s"]
    for precision in precisions:
        columns += [f"{precision} samples/s", f"{precision} speed-up",
                    f"{precision} speed-up (CPU time)"]
    columns += ["plain acc"] + [f"{p} acc" for p in precisions]
    columns += ["plain GFLOP/s"] + [f"{p} GFLOP/s" for p in precisions]
    return markdown([*rows, summary], columns)


def fused_vs_separate(archs: Sequence[Architecture], splits: Sequence[Split],
                      config: TrainConfig, *, precision: str, device: torch.device,
                      seed: int = 0) -> list[dict[str, Any]]:
    """Each architecture on every mix: one run after another, then all fused."""
    rows: list[dict[str, Any]] = []
    samples = sum(len(s.y_train) for s in splits) * config.epochs
    for arch in archs:
        warm = TrainConfig(epochs=1, batch_size=config.batch_size)
        train_fused(arch.layers, [Member(seed, s) for s in splits[:2]], warm, device=device,
                    precision=precision)
        tick = time.perf_counter()
        separate = [train(arch.layers, s, config, seed=seed, device=device,
                          precision=precision) for s in splits]
        separate_s = time.perf_counter() - tick
        tick = time.perf_counter()
        fused = train_fused(arch.layers, [Member(seed, s) for s in splits], config,
                            device=device, precision=precision)
        fused_s = time.perf_counter() - tick
        gap = max(abs(a.final.test_accuracy - b.final.test_accuracy)  # type: ignore[union-attr]
                  for a, b in zip(separate, fused, strict=True))
        rows.append({"architecture": arch.text, "runs": len(splits),
                     "separate samples/s": samples / separate_s,
                     "fused samples/s": samples / fused_s,
                     "fused speed-up": separate_s / fused_s,
                     "max accuracy gap": gap})
    return rows
