"""(b) The whole fc12 x 11 mixes sweep through the queue against the plain loop.

The queue side is what a user types: ``ffqueue sweep run --preset fc12`` on the
embedded defaults (SQLite, the folder queue, a worker in the same command with one
pool process per core), in
a fresh FFQ_HOME, timed from the command's start to its exit: process start, imports,
submission, 132 messages, claims, training, per-epoch metrics and checkpoints, results.
The plain side trains the same 132 runs one after another in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.common import BENCH_DIR, Clock, load_splits, plain_train
from ffqueue.data.mixes import Split
from ffqueue.specs import Architecture, fc12
from ffqueue.sweeps import TrainConfig


def ffqueue(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FFQ_")}
    return subprocess.run([sys.executable, "-m", "ffqueue", *args], capture_output=True,
                          text=True, check=True, env={**clean, "FFQ_HOME": str(home), **env})


def queue_sweep(mixes: Path, epochs: int, *, threads: int = 0, fuse: str = "auto",
                precision: str = "auto", device: str = "auto") -> dict[str, Any]:
    """Run the sweep through ``ffqueue sweep run``; its wall time and per-run accuracy.
    ``threads`` sets FFQ_TORCH_THREADS (default: unset, one process per core)."""
    home = BENCH_DIR / f"queue-{fuse}-{precision}"
    shutil.rmtree(home, ignore_errors=True)
    env = {"FFQ_FUSE": fuse, "FFQ_PRECISION": precision, "FFQ_DEVICE": device}
    if threads:
        env["FFQ_TORCH_THREADS"] = str(threads)
    ffqueue(home, "db", "upgrade", env=env)
    clock = Clock()
    ffqueue(home, "sweep", "run", "--preset", "fc12", "--mixes", str(mixes), "--epochs",
            str(epochs), "--name", "bench", env=env)
    seconds, cpu = clock.wall(), clock.cpu()
    rows = json.loads(ffqueue(home, "results", "--format", "json", env=env).stdout)
    done = [r for r in rows if r["status"] == "done"]
    return {"seconds": seconds, "cpu": cpu, "runs": len(rows), "done": len(done),
            "accuracy": {(r["architecture"], r["mix"]): r["test_accuracy"] for r in done}}


def worker_sweep(mixes: Path, epochs: int, *, processes: int, device: str = "auto",
                 timeout: float = 3600) -> dict[str, Any]:
    """The deployed path: ``ffqueue sweep submit``, then ``ffqueue worker --concurrency N``
    (one process per core, one torch thread each) until every run has ended."""
    import signal
    import sqlite3

    home = BENCH_DIR / f"queue-workers-{processes}"
    shutil.rmtree(home, ignore_errors=True)
    env = {"FFQ_DEVICE": device}
    ffqueue(home, "db", "upgrade", env=env)
    clock = Clock()
    ffqueue(home, "sweep", "submit", "--preset", "fc12", "--mixes", str(mixes), "--epochs",
            str(epochs), "--name", "bench", env=env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FFQ_")}
    worker = subprocess.Popen([sys.executable, "-m", "ffqueue", "worker", "--concurrency",
                               str(processes), "--queues", "train", "--loglevel", "WARNING"],
                              env={**clean, **env, "FFQ_HOME": str(home)},
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    database = sqlite3.connect(home / "ffqueue.db")
    try:
        while clock.wall() < timeout:
            ended = database.execute("SELECT count(*) FROM runs WHERE status IN "
                                     "('done', 'failed', 'cancelled')").fetchone()[0]
            if ended == 132:
                break
            time.sleep(0.1)
        seconds = clock.wall()
    finally:
        database.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    cpu = clock.cpu()
    rows = json.loads(ffqueue(home, "results", "--format", "json", env=env).stdout)
    done = [r for r in rows if r["status"] == "done"]
    return {"seconds": seconds, "cpu": cpu, "runs": len(rows), "done": len(done),
            "accuracy": {(r["architecture"], r["mix"]): r["test_accuracy"] for r in done}}


def plain_sweep(mixes: Path, epochs: int, device: torch.device | None = None) -> dict[str, Any]:
    """The 132 runs one after another through the plain PyTorch loop."""
    return _direct_sweep(mixes, epochs, lambda arch, data, config: plain_train(
        arch.layers, data, config, 0, device).test_accuracy)


def engine_sweep(mixes: Path, epochs: int, precision: str,
                 device: torch.device | None = None) -> dict[str, Any]:
    """The same 132 runs through ``worker.train.train`` directly: the engine without the
    queue, so that (b) shows what the queue itself costs."""
    from worker.train import train

    def run(arch: Architecture, data: Split, config: TrainConfig) -> float:
        final = train(arch.layers, data, config, seed=0, precision=precision,
                      device=device).final
        return final.test_accuracy if final else float("nan")

    return _direct_sweep(mixes, epochs, run)


def _direct_sweep(mixes: Path, epochs: int,
                  run: Callable[[Architecture, Split, TrainConfig], float]) -> dict[str, Any]:
    """fc12 x 11 mixes in this process, timed; ``run`` trains one and gives its accuracy."""
    splits = load_splits(mixes, range(11))
    config = TrainConfig(epochs=epochs)
    accuracy: dict[tuple[str, int], float] = {}
    clock = Clock()
    for arch in fc12():
        for mix, data in enumerate(splits):
            accuracy[(arch.text, mix)] = run(arch, data, config)
    return {"seconds": clock.wall(), "cpu": clock.cpu(), "runs": len(accuracy),
            "done": len(accuracy), "accuracy": accuracy}


def compare(plain: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Speed-up and accuracy gaps (in points) of ``other`` against the plain loop."""
    keys = sorted(set(plain["accuracy"]) & set(other["accuracy"]))
    gaps = [100 * (other["accuracy"][k] - plain["accuracy"][k]) for k in keys]
    by_arch: dict[str, list[float]] = {}
    for key, gap in zip(keys, gaps, strict=True):
        by_arch.setdefault(key[0], []).append(gap)
    return {"speed-up": plain["seconds"] / other["seconds"],
            "speed-up (CPU time)": plain["cpu"] / other["cpu"],
            "mean acc gap (points)": statistics.fmean(gaps) if gaps else float("nan"),
            "worst arch mean gap": max((abs(statistics.fmean(g)) for g in by_arch.values()),
                                       default=float("nan"))}
