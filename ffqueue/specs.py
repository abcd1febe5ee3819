"""Architecture specs: validation by shape inference, hashes, text forms, presets.

A spec is a JSON list of layers. A flatten is implied before the first ``fc`` and a
final 10-way ``fc`` is implied at the end, so the perceptron is ``[]``. ReLU follows
every conv and hidden fc. This module is pure Python: the worker builds the torch
module from the same validated spec.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ffqueue.errors import SpecError

INPUT_SHAPE = (1, 28, 28)  # channels, height, width of a QuickDraw bitmap
NUM_CLASSES = 10

# Allowed keys per layer type, with defaults (None: required).
LAYER_FIELDS: dict[str, dict[str, Any]] = {
    "conv": {"filters": None, "kernel": None, "stride": 1, "padding": 0},
    "pool": {"kind": "max", "size": None},
    "dropout": {"p": None},
    "fc": {"units": None},
}
GLYPH_COLOURS = {"conv": "#1f77b4", "pool": "#d62728", "dropout": "#ff7f0e", "fc": "#2ca02c"}

Layer = dict[str, Any]


@dataclass(frozen=True)
class Architecture:
    """A validated spec and what follows from it."""

    spec: tuple[Layer, ...]  # normalised layers, defaults filled in
    params: int  # trainable parameters, output layer included
    depth: int  # layers in the spec plus the implied output layer
    text: str  # one-line form, e.g. "conv32k3-pool2-drop0.25-fc128"
    hash: str  # sha256 of the canonical JSON of ``spec``
    macs: int = 0  # multiply-accumulates of one forward pass of one sample

    @property
    def layers(self) -> list[Layer]:
        return [dict(layer) for layer in self.spec]

    def glyph(self) -> list[str]:
        """Colours of the layers, output layer last, for the architecture figures."""
        return [GLYPH_COLOURS[layer["type"]] for layer in self.spec] + [GLYPH_COLOURS["fc"]]


def _positive_int(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def _normalise_layer(raw: Any, index: int) -> Layer:
    where = f"layer {index}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected an object like {{'type': 'fc', ...}}, got {raw!r}")
    kind = raw.get("type")
    if kind not in LAYER_FIELDS:
        raise SpecError(f"{where}: unknown type {kind!r} (conv, pool, dropout or fc)")
    where = f"layer {index} ({kind})"
    fields = LAYER_FIELDS[kind]
    unknown = set(raw) - set(fields) - {"type"}
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    layer: Layer = {"type": kind}
    for name, default in fields.items():
        if name not in raw and default is None:
            raise SpecError(f"{where}: missing {name!r}")
        layer[name] = raw.get(name, default)
    if kind == "conv":
        for name in ("filters", "kernel", "stride"):
            _positive_int(layer[name], where, name)
        padding = layer["padding"]
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise SpecError(f"{where}: padding must be a non-negative integer, got {padding!r}")
    elif kind == "pool":
        if layer["kind"] not in ("max", "avg"):
            raise SpecError(f"{where}: kind must be 'max' or 'avg', got {layer['kind']!r}")
        _positive_int(layer["size"], where, "size")
    elif kind == "dropout":
        p = layer["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise SpecError(f"{where}: p must be a number in [0, 1), got {p!r}")
        layer["p"] = float(p)
    else:
        _positive_int(layer["units"], where, "units")
    return layer


def _layer_text(layer: Layer) -> str:
    kind = layer["type"]
    if kind == "conv":
        text = f"conv{layer['filters']}k{layer['kernel']}"
        text += f"s{layer['stride']}" if layer["stride"] != 1 else ""
        return text + (f"p{layer['padding']}" if layer["padding"] else "")
    if kind == "pool":
        return ("pool" if layer["kind"] == "max" else "avgpool") + str(layer["size"])
    if kind == "dropout":
        return f"drop{layer['p']:g}"
    return f"fc{layer['units']}"


def canonical_json(spec: list[Layer] | tuple[Layer, ...]) -> str:
    """The JSON that the hash is taken of: sorted keys, no spaces."""
    return json.dumps(list(spec), sort_keys=True, separators=(",", ":"))


def parse_spec(raw: Any) -> Architecture:
    """Validate a spec by shape inference and describe it.

    Raises SpecError naming the layer and the shape when, for example, a conv or
    pool makes the feature map collapse to nothing.
    """
    if not isinstance(raw, list):
        raise SpecError(f"a spec must be a list of layers, got {type(raw).__name__}")
    layers = [_normalise_layer(item, i) for i, item in enumerate(raw)]
    channels, height, width = INPUT_SHAPE
    flat: int | None = None  # set once the first fc has flattened the map
    params = macs = 0
    for i, layer in enumerate(layers):
        kind = layer["type"]
        where = f"layer {i} ({_layer_text(layer)})"
        if kind in ("conv", "pool") and flat is not None:
            raise SpecError(f"{where}: {kind} after fc; the map is already flat ({flat} units)")
        if kind == "conv":
            k, s, p = layer["kernel"], layer["stride"], layer["padding"]
            new_h, new_w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
            if new_h < 1 or new_w < 1:
                raise SpecError(f"{where}: input {channels}x{height}x{width} collapses to nothing")
            params += k * k * channels * layer["filters"] + layer["filters"]
            macs += k * k * channels * layer["filters"] * new_h * new_w
            channels, height, width = layer["filters"], new_h, new_w
        elif kind == "pool":
            size = layer["size"]
            if height // size < 1 or width // size < 1:
                raise SpecError(f"{where}: input {channels}x{height}x{width} collapses to nothing")
            height, width = height // size, width // size
        elif kind == "fc":
            fan_in = flat if flat is not None else channels * height * width
            params += fan_in * layer["units"] + layer["units"]
            macs += fan_in * layer["units"]
            flat = layer["units"]
    fan_in = flat if flat is not None else channels * height * width
    params += fan_in * NUM_CLASSES + NUM_CLASSES
    macs += fan_in * NUM_CLASSES
    text = "-".join(_layer_text(layer) for layer in layers) or "perceptron"
    digest = hashlib.sha256(canonical_json(layers).encode()).hexdigest()
    return Architecture(spec=tuple(layers), params=params, depth=len(layers) + 1, text=text,
                        hash=digest, macs=macs)


# The article's 12 fully-connected nets of depth < 4: the perceptron, seven nets with one
# hidden layer and four with two, widths 16 to 1024 (the article gives no widths, only
# that wider nets did better; these span the range on a log scale).
FC12_HIDDEN: tuple[tuple[int, ...], ...] = (
    (),
    (16,), (32,), (64,), (128,), (256,), (512,), (1024,),
    (64, 32), (256, 128), (512, 256), (1024, 512),
)


def fc12() -> list[Architecture]:
    """The ``fc12`` preset."""
    return [parse_spec([{"type": "fc", "units": w} for w in widths]) for widths in FC12_HIDDEN]


# The ``cnn100`` space: 100 CNNs of depth < 7 sampled with a seed, as in the article (which
# names the four layer types and the depth bound, not the values). A spec has 1 to 5
# layers (depth 2 to 6 with the implied output layer) and at least one conv; the first
# layer is conv, pool or dropout (some nets start with pool or dropout, like the
# article's weakest ones); conv and pool come before the first fc. Samples that are
# invalid (the map collapses), duplicates, or too big for a CPU (more than
# CNN_MAX_PARAMS parameters or CNN_MAX_MACS multiply-adds per sample) are drawn again
# from the same random stream, so a seed always gives the same 100.
CNN100_SEED = 0
CNN100_COUNT = 100
CNN_SPACE: dict[str, tuple[Any, ...]] = {
    "length": (1, 2, 3, 4, 5),  # layers in the spec
    "filters": (8, 16, 32, 64),
    "kernel": (3, 5, 7),
    "stride": (1, 1, 1, 2),  # stride 2 one time in four
    "padding": ("valid", "same"),  # 0 or kernel // 2
    "pool_kind": ("max", "avg"),
    "pool_size": (2, 3),
    "dropout": (0.1, 0.25, 0.5),
    "units": (32, 64, 128, 256, 512),
}
# Relative weights of the layer types: first layer, then before and after the first fc.
CNN_FIRST = {"conv": 6, "pool": 2, "dropout": 2}
CNN_BEFORE_FC = {"conv": 4, "pool": 2, "dropout": 2, "fc": 3}
CNN_AFTER_FC = {"fc": 3, "dropout": 2}
CNN_MAX_PARAMS = 2_000_000
CNN_MAX_MACS = 20_000_000


def _sample_layer(rng: random.Random, kind: str) -> Layer:
    if kind == "conv":
        kernel = rng.choice(CNN_SPACE["kernel"])
        same = rng.choice(CNN_SPACE["padding"]) == "same"
        return {"type": "conv", "filters": rng.choice(CNN_SPACE["filters"]), "kernel": kernel,
                "stride": rng.choice(CNN_SPACE["stride"]), "padding": kernel // 2 if same else 0}
    if kind == "pool":
        return {"type": "pool", "kind": rng.choice(CNN_SPACE["pool_kind"]),
                "size": rng.choice(CNN_SPACE["pool_size"])}
    if kind == "dropout":
        return {"type": "dropout", "p": rng.choice(CNN_SPACE["dropout"])}
    return {"type": "fc", "units": rng.choice(CNN_SPACE["units"])}


def _sample_spec(rng: random.Random) -> list[Layer]:
    layers: list[Layer] = []
    for i in range(rng.choice(CNN_SPACE["length"])):
        flat = any(layer["type"] == "fc" for layer in layers)
        weights = dict(CNN_FIRST if i == 0 else CNN_AFTER_FC if flat else CNN_BEFORE_FC)
        if layers and layers[-1]["type"] == "dropout":
            weights.pop("dropout")  # two dropouts in a row are one dropout
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        layers.append(_sample_layer(rng, kind))
    return layers


def sample_cnns(count: int = CNN100_COUNT, seed: int = CNN100_SEED) -> list[Architecture]:
    """``count`` distinct valid CNNs from the documented space; the same seed, the same nets."""
    rng = random.Random(seed)
    out: list[Architecture] = []
    seen: set[str] = set()
    while len(out) < count:
        raw = _sample_spec(rng)
        if not any(layer["type"] == "conv" for layer in raw):
            continue
        try:
            arch = parse_spec(raw)
        except SpecError:
            continue  # the map collapsed: draw again
        if arch.params > CNN_MAX_PARAMS or arch.macs > CNN_MAX_MACS or arch.hash in seen:
            continue
        seen.add(arch.hash)
        out.append(arch)
    return out


@functools.cache
def cnn100() -> list[Architecture]:
    """The ``cnn100`` preset: ``sample_cnns()`` with the default seed."""
    return sample_cnns()


PRESETS: dict[str, Callable[[], list[Architecture]]] = {"fc12": fc12, "cnn100": cnn100}


def preset(name: str) -> list[Architecture]:
    """Architectures of a named preset."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return list(PRESETS[name]())
