"""One worker process per GPU: ``ffqueue worker --gpus 0,1`` (or ``all``).

The parent never imports torch, so CUDA is never initialised in a process that forks
or spawns: it lists the GPUs with ``nvidia-smi -L`` and starts each worker as a fresh
``python -m ffqueue worker`` process that sees exactly one GPU
(``CUDA_VISIBLE_DEVICES``), trains on it (``FFQ_DEVICE=cuda``) one run at a time
(concurrency 1, solo pool: no fork after CUDA is up) and gets an equal share of the
CPU cores for its data handling. ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes CUDA number the
GPUs as nvidia-smi does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from ffqueue.errors import ConfigError

_GPU_LINE = re.compile(r"^GPU (\d+):")


def list_gpus(nvidia_smi: str | None = None) -> list[str]:
    """Indices of the NVIDIA GPUs of this machine (``[]`` without a driver)."""
    command = nvidia_smi or shutil.which("nvidia-smi")
    if command is None:
        return []
    try:
        listing = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=30,
                                 check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for line in listing.splitlines() if (m := _GPU_LINE.match(line.strip()))]


def parse_gpus(value: str, available: Sequence[str]) -> list[str]:
    """``all`` or a comma-separated list of GPU indices, checked against ``available``.

    An empty result means "no GPU here" for ``all``; naming a GPU that does not exist is
    an error.
    """
    text = value.strip().lower()
    if text == "all":
        return list(available)
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise ConfigError(f"--gpus takes 'all' or GPU indices like 0,1; got {value!r}")
    gpus = [str(int(p)) for p in parts]
    if len(set(gpus)) != len(gpus):
        raise ConfigError(f"--gpus lists a GPU twice: {value!r}")
    missing = [g for g in gpus if g not in available]
    if missing:
        seen = ", ".join(available) if available else "none"
        raise ConfigError(f"GPU {', '.join(missing)} not found (nvidia-smi -L lists: {seen})")
    return gpus


def gpu_environment(base: dict[str, str], gpu: str, *, threads: int) -> dict[str, str]:
    """The environment of the worker pinned to ``gpu``."""
    env = dict(base)
    env.update({
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": gpu,
        "FFQ_DEVICE": "cuda",  # the one GPU this process sees
        "FFQ_TORCH_THREADS": str(max(1, threads)),
    })
    return env


def node_name(hostname: str | None, gpu: str) -> str:
    """A distinct Celery node name per GPU: ``celery-gpu0@%h`` (Celery expands ``%h``)."""
    name, _, host = (hostname or "celery@%h").partition("@")
    return f"{name}-gpu{gpu}@{host or '%h'}"


def worker_argv(gpu: str, *, queues: str, loglevel: str, hostname: str | None) -> list[str]:
    return [sys.executable, "-m", "ffqueue", "worker", "--concurrency", "1", "--pool", "solo",
            "--queues", queues, "--loglevel", loglevel, "--hostname", node_name(hostname, gpu)]


def run_gpu_workers(gpus: Sequence[str], *, queues: str, loglevel: str,
                    hostname: str | None, cores: int) -> int:
    """Start one worker per GPU and wait for them; SIGINT/SIGTERM are passed on (Celery's
    warm shutdown: each finishes its run). The exit status is the worst of theirs."""
    threads = max(1, cores // max(1, len(gpus)))
    children = [subprocess.Popen(worker_argv(gpu, queues=queues, loglevel=loglevel,
                                             hostname=hostname),
                                 env=gpu_environment(dict(os.environ), gpu, threads=threads))
                for gpu in gpus]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return max((abs(c) for c in codes), default=0)


def start_gpu_workers(value: str, *, queues: str, loglevel: str,
                      hostname: str | None) -> int | None:
    """``ffqueue worker --gpus VALUE``: the workers' exit status once they end, or None
    when ``all`` finds no GPU (the caller then starts CPU workers, as it says on stderr)."""
    from ffqueue.settings import available_cores

    gpus = parse_gpus(value, list_gpus())
    if not gpus:
        print("no GPU found (nvidia-smi -L lists none): starting CPU workers instead",
              file=sys.stderr)
        return None
    print(f"starting {len(gpus)} GPU worker(s): GPU {', '.join(gpus)}", file=sys.stderr)
    return run_gpu_workers(gpus, queues=queues, loglevel=loglevel, hostname=hostname,
                           cores=available_cores())
