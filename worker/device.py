"""Device choice, numeric precision and CPU thread budget for a worker process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ffqueue.errors import ConfigError
from ffqueue.settings import available_cores

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(setting: str = "auto") -> torch.device:
    """``auto`` takes the first visible GPU when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
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


def bf16_native(device: torch.device) -> bool:
    """Whether the device computes bf16 matmuls and convolutions in hardware."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:  # oneDNN's own check: AVX512-BF16 or AMX on x86
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        return False


def resolve_precision(setting: str, device: torch.device) -> str:
    """``auto`` is bf16 autocast where the hardware has bf16 (measured in
    docs/benchmarks.md: twice as fast on an AVX512-BF16 CPU, accuracy within noise), else fp32."""
    if setting not in PRECISIONS:
        raise ConfigError(f"unknown precision {setting!r} ({', '.join(PRECISIONS)})")
    if setting == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    if setting == "bf16" and not bf16_native(device) and device.type == "cuda":
        raise ConfigError("FFQ_PRECISION=bf16 but this GPU has no bf16 support")
    return setting


def configure(device: torch.device) -> None:
    """Per-process speed switches for CUDA: TF32 for the fp32 parts, cuDNN autotuning.

    TF32 keeps fp32's range with a 10-bit mantissa (the same as bf16 autocast's matmuls
    have 7); the nets here are trained in it by default, as on every Ampere+ GPU setup.
    """
    if device.type != "cuda":
        return
    if hasattr(torch.backends, "fp32_precision"):  # the PyTorch >= 2.9 switches
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # type: ignore[attr-defined]
    else:  # pragma: no cover - older PyTorch
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed input shapes: autotune each conv once


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast for the forward pass when ``precision`` is bf16, else nothing."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
