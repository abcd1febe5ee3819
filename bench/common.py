"""What the benchmarks share: data, the plain PyTorch loop they are measured against,
FLOP counting, the machine's matmul rate and markdown tables."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ffqueue.specs import Architecture
from ffqueue.sweeps import TrainConfig
from worker.nets import build_model
from worker.train import Split

BENCH_DIR = Path(tempfile.gettempdir()) / "ffqueue-bench"


def mixes_dir(per_class: int, seed: int = 0) -> Path:
    """The 11 synthetic-doodle mixes with ``per_class`` drawings a class (built once)."""
    from ffqueue.cli_data import build_demo_data

    return Path(build_demo_data(BENCH_DIR / "data", per_class=per_class, seed=seed))


def load_splits(directory: Path, indices: Sequence[int]) -> list[Split]:
    from ffqueue.data.mixes import load_mix

    return [load_mix(directory, i) for i in indices]


@dataclass
class RunOutcome:
    seconds: float  # wall time
    test_accuracy: float
    cpu: float = 0.0  # CPU time of this process (all threads) while it ran


@dataclass
class Clock:
    """Wall and CPU time from its creation: on a shared machine the CPU time is the
    steadier measure of the work done (another process's load stretches only the wall
    time), as long as each side uses the same number of threads."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)
    children0: float = field(default_factory=lambda: _children_cpu())

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0 + _children_cpu() - self.children0


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_train(spec: Sequence[dict[str, Any]], data: Split, config: TrainConfig,
                seed: int, device: torch.device | None = None) -> RunOutcome:
    """The baseline: how one would write it with stock PyTorch, one run at a time.

    TensorDataset + DataLoader(shuffle=True, batch_size) + Adam, float32 throughout,
    validation and test accuracy after every epoch (as the engine does). On a GPU the
    model and the evaluation sets live there and each batch is moved as it comes.
    """
    device = device or torch.device("cpu")
    clock = Clock()
    torch.manual_seed(seed)
    model = build_model(list(spec)).to(device)
    x = torch.tensor(data.x_train, dtype=torch.float32) / 255
    loader = DataLoader(TensorDataset(x, torch.tensor(data.y_train, dtype=torch.int64)),
                        batch_size=config.batch_size, shuffle=True)
    x_val = (torch.tensor(data.x_val, dtype=torch.float32) / 255).to(device)
    x_test = (torch.tensor(data.x_test, dtype=torch.float32) / 255).to(device)
    y_val, y_test = torch.tensor(data.y_val).to(device), torch.tensor(data.y_test).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    test_accuracy = float("nan")
    for _ in range(config.epochs):
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():  # .item() waits for the device: the clock sees all the work
            _val = (model(x_val).argmax(1) == y_val).float().mean().item()
            test_accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return RunOutcome(clock.wall(), test_accuracy, clock.cpu())


def training_flops(arch: Architecture, data: Split, epochs: int) -> float:
    """FLOPs of training ``arch`` for ``epochs``: 6 per multiply-add per training sample
    (forward 2, backward 4) plus 2 per evaluated sample. An estimate: pooling,
    activations and the optimiser are left out."""
    n_train, n_val, n_test = data.sizes
    return float(arch.macs) * (6 * n_train + 2 * (n_val + n_test)) * epochs


def matmul_rate(dtype: torch.dtype = torch.float32, size: int = 1024,
                seconds: float = 1.0, device: torch.device | None = None) -> float:
    """The device's dense matmul rate in FLOP/s (best of a few timed bursts)."""
    device = device or torch.device("cpu")

    def wait() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b  # warm up the kernels
    wait()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        tick = time.perf_counter()
        for _ in range(4):
            a @ b
        wait()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - tick))
    return best


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def machine() -> str:
    import platform

    from ffqueue.settings import available_cores

    return (f"{platform.processor() or platform.machine()}, {available_cores()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")
