"""What a sweep is: the run configuration and the sweep definition, before any database.

A sweep file (YAML or JSON) looks like::

    name: fc-decay
    mixes: ./ffqueue-data/mixes        # a directory of mixes
    presets: [fc12]
    architectures:                     # optional extra specs
      - [{type: conv, filters: 32, kernel: 3}, {type: pool, size: 2}]
    seeds: [0, 1]
    mix_indices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    epochs: 30
    batch_size: 512
    lr: 0.001
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ffqueue.errors import SpecError, SweepError
from ffqueue.specs import Architecture, canonical_json, parse_spec, preset

ALL_MIXES = tuple(range(11))


@dataclass(frozen=True)
class TrainConfig:
    """How every run of a sweep trains. Stored with the sweep; the same for all its runs."""

    epochs: int = 30  # passes over the training split
    batch_size: int = 512  # samples per optimiser step
    lr: float = 0.001  # Adam learning rate

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise SweepError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                or self.batch_size < 1):
            raise SweepError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise SweepError(f"lr must be a positive number, got {self.lr!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class SweepDefinition:
    """Everything that decides which runs a sweep has; its hash is the sweep's key."""

    name: str
    mixes_dir: str  # absolute path of the mixes directory
    presets: tuple[str, ...] = ()
    specs: tuple[tuple[dict[str, Any], ...], ...] = ()  # extra architectures, normalised
    seeds: tuple[int, ...] = (0,)
    mix_indices: tuple[int, ...] = ALL_MIXES
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise SweepError("name must be 1 to 200 characters")
        if not self.presets and not self.specs:
            raise SweepError("a sweep needs at least one preset or architecture")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                                 for s in self.seeds):
            raise SweepError(f"seeds must be non-negative integers, got {list(self.seeds)!r}")
        bad = [m for m in self.mix_indices if m not in ALL_MIXES]
        if not self.mix_indices or bad:
            raise SweepError(f"mix indices must be in 0..10, got {list(self.mix_indices)!r}")

    def architectures(self) -> list[tuple[str, Architecture]]:
        """(preset name, architecture) pairs, without duplicates, in a stable order."""
        seen: set[str] = set()
        out: list[tuple[str, Architecture]] = []
        candidates = [(name, arch) for name in self.presets for arch in preset(name)]
        candidates += [("custom", parse_spec([dict(layer) for layer in spec]))
                       for spec in self.specs]
        for name, arch in candidates:
            if arch.hash not in seen:
                seen.add(arch.hash)
                out.append((name, arch))
        return out

    def key(self) -> str:
        """sha256 of the canonical definition: submitting the same sweep twice is a no-op."""
        data = {
            "name": self.name,
            "mixes_dir": self.mixes_dir,
            "presets": sorted(self.presets),
            "specs": sorted(canonical_json(spec) for spec in self.specs),
            "seeds": sorted(self.seeds),
            "mix_indices": sorted(self.mix_indices),
            "train": self.train.as_dict(),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def make_definition(
    *,
    name: str | None,
    mixes_dir: str | Path,
    presets: list[str] | tuple[str, ...] = (),
    specs: list[Any] | tuple[Any, ...] = (),
    seeds: list[int] | tuple[int, ...] = (0,),
    mix_indices: list[int] | tuple[int, ...] = ALL_MIXES,
    train: TrainConfig | None = None,
) -> SweepDefinition:
    """Validate the parts of a sweep and put them together."""
    normalised: list[tuple[dict[str, Any], ...]] = []
    for i, spec in enumerate(specs):
        try:
            normalised.append(parse_spec(spec).spec)
        except SpecError as exc:
            raise SpecError(f"architecture {i}: {exc}") from None
    for name_ in presets:
        preset(name_)  # raises on an unknown preset
    mixes = Path(mixes_dir).expanduser().resolve()
    default_name = "+".join(presets) or "custom"
    return SweepDefinition(
        name=name or default_name,
        mixes_dir=str(mixes),
        presets=tuple(dict.fromkeys(presets)),
        specs=tuple(normalised),
        seeds=tuple(dict.fromkeys(seeds)),
        mix_indices=tuple(sorted(set(mix_indices))),
        train=train or TrainConfig(),
    )


SWEEP_FILE_KEYS = {"name", "mixes", "presets", "architectures", "seeds", "mix_indices",
                   "epochs", "batch_size", "lr"}


def load_sweep_file(path: str | Path, **overrides: Any) -> SweepDefinition:
    """Read a YAML or JSON sweep file; relative ``mixes`` paths are relative to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"sweep file {path} cannot be read: {first}") from None
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {path}: expected a mapping at the top level")
    unknown = set(data) - SWEEP_FILE_KEYS
    if unknown:
        raise SweepError(f"sweep file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "mixes" not in data:
        raise SweepError(f"sweep file {path}: missing 'mixes' (a directory of mixes)")
    mixes = Path(str(data["mixes"])).expanduser()
    if not mixes.is_absolute():
        mixes = path.parent / mixes
    try:
        train = TrainConfig(**{k: data[k] for k in ("epochs", "batch_size", "lr") if k in data})
        return make_definition(
            name=data.get("name"),
            mixes_dir=mixes,
            presets=_list_of(data.get("presets", []), str, "presets"),
            specs=_list_of(data.get("architectures", []), list, "architectures"),
            seeds=_list_of(data.get("seeds", [0]), int, "seeds"),
            mix_indices=_list_of(data.get("mix_indices", list(ALL_MIXES)), int, "mix_indices"),
            train=train,
        )
    except (SweepError, SpecError) as exc:
        raise type(exc)(f"sweep file {path}: {exc}") from None


def _list_of(value: Any, kind: type, key: str) -> list[Any]:
    if not isinstance(value, list) or any(
        not isinstance(v, kind) or isinstance(v, bool) for v in value
    ):
        raise SweepError(f"{key} must be a list of {kind.__name__}, got {value!r}")
    return value
