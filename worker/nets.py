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
            layers.append(nn.Dropout(layer["p"]))
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


def xavier_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as in the article."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
