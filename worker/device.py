"""Device choice and CPU thread budget for a worker process."""

from __future__ import annotations

import torch

from ffqueue.settings import available_cores


def pick_device(setting: str = "auto") -> torch.device:
    """``auto`` takes the first visible GPU when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        from ffqueue.errors import ConfigError

        raise ConfigError(f"FFQ_DEVICE={setting} but no CUDA device is visible")
    return device


def set_threads(requested: int = 0) -> int:
    """Use the cores this process may run on, never more: oversubscribing is much slower."""
    threads = requested or available_cores()
    torch.set_num_threads(threads)
    return threads


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name(device)}"
    return "cpu"
