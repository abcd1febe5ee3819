"""Build a torch module from a validated architecture spec."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ffqueue.specs import INPUT_SHAPE, NUM_CLASSES, parse_spec


def build_model(spec: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> nn.Sequential:
    """The network of ``spec``: ReLU after every conv and hidden fc, a final 10-way fc.

    Inputs are (N, 784) float tensors in [0, 1]; they are reshaped to images only
    when the spec has convolutions or pooling.
    """
    arch = parse_spec(list(spec))  # shape inference: invalid specs never reach torch
    layers: list[nn.Module] = []
    spatial = any(layer["type"] in ("conv", "pool") for layer in arch.spec)
    if spatial:
        layers.append(nn.Unflatten(1, INPUT_SHAPE))
    flat = not spatial
    for layer in arch.spec:
        kind = layer["type"]
        if kind == "conv":
            layers += [nn.LazyConv2d(layer["filters"], layer["kernel"], layer["stride"],
                                     layer["padding"]), nn.ReLU()]
        elif kind == "pool":
            pool = nn.MaxPool2d if layer["kind"] == "max" else nn.AvgPool2d
            layers.append(pool(layer["size"]))
        elif kind == "dropout":
            layers.append(SeededDropout(layer["p"]))
        else:
            if not flat:
                layers.append(nn.Flatten())
                flat = True
            layers += [nn.LazyLinear(layer["units"]), nn.ReLU()]
    if not flat:
        layers.append(nn.Flatten())
    layers.append(nn.LazyLinear(NUM_CLASSES))
    model = nn.Sequential(*layers)
    model(torch.zeros(1, INPUT_SHAPE[1] * INPUT_SHAPE[2]))  # materialise the lazy layers
    xavier_init(model)
    return model


class SeededDropout(nn.Module):
    """Dropout whose masks come from the run's own generator (``generator``) when one is set.

    A private stream per run, rather than the global RNG, is what lets fused training
    (worker/fused.py) draw every member's masks exactly as its separate run would, and
    lets a checkpoint restore the stream. With no generator it uses the global RNG.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(tuple(x.shape), self.p, self.generator, x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None,
                 like: torch.Tensor) -> torch.Tensor:
    """Kept units scaled by 1/(1-p), dropped ones 0: the one recipe both engines share."""
    keep = torch.empty(shape, device=like.device, dtype=torch.float32)
    keep.bernoulli_(1.0 - p, generator=generator)
    return keep.mul_(1.0 / (1.0 - p)).to(like.dtype)


def set_dropout_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator


def xavier_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as in the article."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
