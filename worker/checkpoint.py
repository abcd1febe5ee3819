"""Per-run checkpoints: written atomically after every epoch, read back to resume.

A checkpoint holds tensors and plain containers only (weights, Adam state, the RNG
streams as byte tensors, the metrics of the epochs done), so it loads with
``torch.load(weights_only=True)``. It also holds the run's *key* — a hash of what
decides the training (spec, seed, data, configuration) — so a stale file, say from an
earlier database that reused the run id, is never resumed by mistake.

torch is imported inside the functions: the runner may call ``checkpoint_epoch`` at
claim time without the CLI paying for the import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout below changes; other formats are ignored
CHECKPOINT = "checkpoint.pt"
FINAL = "final.pt"


def run_dir(artifact_dir: Path, run_id: int) -> Path:
    return Path(artifact_dir) / "runs" / str(run_id)


def checkpoint_path(artifact_dir: Path, run_id: int) -> Path:
    """``<artifact_dir>/runs/<run_id>/checkpoint.pt``."""
    return run_dir(artifact_dir, run_id) / CHECKPOINT


def run_key(spec: Any, seed: int, config: dict[str, Any], content_hash: str) -> str:
    """sha256 of what makes a run's training: equal keys, interchangeable checkpoints."""
    data = {"spec": spec, "seed": seed, "config": config, "data": content_hash}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` so that a reader sees the old file or the new one, never half."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
        handle.flush()
        os.fsync(handle.fileno())  # the rename must not land before the data
    tmp.replace(path)


def load_checkpoint(path: Path | None, key: str | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none, it is unreadable, of
    another format, or (when ``key`` is given) of another run."""
    if path is None or not path.exists():
        return None
    import torch

    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start over rather than fail the run
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        log.warning("ignoring checkpoint %s of another format", path)
        return None
    if key is not None and state.get("key") != key:
        log.warning("ignoring checkpoint %s of another run", path)
        return None
    return state


def checkpoint_epoch(path: Path | None, key: str | None = None) -> int:
    """Epochs the checkpoint at ``path`` has done; 0 when there is none (or it is not usable)."""
    state = load_checkpoint(path, key)
    return int(state["epoch"]) if state is not None else 0


def prune_checkpoint(path: Path | None) -> None:
    """Drop a finished run's checkpoint: its final weights are kept in ``final.pt``."""
    if path is not None:
        path.unlink(missing_ok=True)
