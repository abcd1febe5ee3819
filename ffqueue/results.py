"""Reading results and storing the analysis: the database side of ``analysis.py``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from ffqueue.analysis import fit_decay
from ffqueue.errors import NotFoundError
from ffqueue.models import Architecture, DecayResult, Run, RunStatus, Sweep, utcnow


def resolve_sweep(ref: str | int | None, *, session: Session) -> Sweep:
    """A sweep by id or name; the newest sweep when ``ref`` is None."""
    query = select(Sweep).order_by(Sweep.id.desc())
    if ref is None:
        sweep = session.scalars(query.limit(1)).first()
        if sweep is None:
            raise NotFoundError("there are no sweeps yet; submit one with `ffqueue sweep submit`")
        return sweep
    text = str(ref)
    if text.isdigit():
        sweep = session.get(Sweep, int(text))
    else:
        sweep = session.scalars(query.where(Sweep.name == text).limit(1)).first()
    if sweep is None:
        raise NotFoundError(f"no sweep {text!r}")
    return sweep


def run_rows(sweep: Sweep | None, *, session: Session, preset: str | None = None,
             architecture: str | None = None) -> list[dict[str, Any]]:
    """One plain dict per run, in the shape ``ffqueue results`` prints."""
    query = (select(Run).options(joinedload(Run.architecture), joinedload(Run.dataset),
                                 joinedload(Run.sweep))
             .order_by(Run.sweep_id, Run.preset, Run.architecture_id, Run.seed, Run.dataset_id))
    if sweep is not None:
        query = query.where(Run.sweep_id == sweep.id)
    if preset:
        query = query.where(Run.preset == preset)
    if architecture:
        query = query.join(Run.architecture).where(Architecture.text == architecture)
    return [
        {
            "run": run.id,
            "sweep": run.sweep.name,
            "sweep_id": run.sweep_id,
            "preset": run.preset,
            "architecture": run.architecture.text,
            "params": run.architecture.params,
            "depth": run.architecture.depth,
            "mix": run.dataset.mix_index,
            "seed": run.seed,
            "status": run.status.value,
            "test_accuracy": run.test_accuracy,
            "val_accuracy": run.val_accuracy,
            "epochs_done": run.epochs_done,
            "attempts": run.attempts,
            "device": run.device,
            "host": run.host,
            "seconds": run.train_seconds,
            "error": run.error,
        }
        for run in session.scalars(query).unique()
    ]


def status_counts(sweep: Sweep, *, session: Session) -> dict[str, int]:
    rows = session.execute(select(Run.status, func.count()).where(Run.sweep_id == sweep.id)
                           .group_by(Run.status)).all()
    counts = {status.value: 0 for status in RunStatus}
    counts.update({status.value: n for status, n in rows})
    return counts


def analyze_sweep(sweep_id: int, *, session: Session) -> list[DecayResult]:
    """Fit every (architecture, seed) curve of a sweep and replace its stored fits."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFoundError(f"no sweep {sweep_id}")
    curves: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    done = session.execute(
        select(Run.architecture_id, Run.seed, Run.dataset_id, Run.test_accuracy)
        .where(Run.sweep_id == sweep_id, Run.status == RunStatus.DONE)
    ).all()
    mix_of = _mix_indices(session, {row.dataset_id for row in done})
    for row in done:
        curves[(row.architecture_id, row.seed)].append((mix_of[row.dataset_id], row.test_accuracy))
    session.execute(delete(DecayResult).where(DecayResult.sweep_id == sweep_id))
    stored = []
    for (arch_id, seed), points in sorted(curves.items()):
        mixes, accuracies = zip(*sorted(points), strict=True)
        fit = fit_decay(mixes, accuracies)
        result = DecayResult(sweep_id=sweep_id, architecture_id=arch_id, seed=seed,
                             n_mixes=len(points), max_accuracy=max(accuracies),
                             partial=len(points) < 11)
        if fit is not None:
            result.slope, result.intercept = fit.slope, fit.intercept
            result.r2, result.stderr = fit.r2, fit.stderr
        session.add(result)
        stored.append(result)
    sweep.analyzed_at = utcnow()
    session.flush()
    return stored


def _mix_indices(session: Session, dataset_ids: set[int]) -> dict[int, int]:
    from ffqueue.models import Dataset

    if not dataset_ids:
        return {}
    rows = session.execute(select(Dataset.id, Dataset.mix_index)
                           .where(Dataset.id.in_(dataset_ids))).all()
    return {row.id: row.mix_index for row in rows}


def analyze_stale_sweeps(*, session: Session) -> list[int]:
    """Analyse the sweeps with runs finished after their last analysis; their ids."""
    latest = (select(Run.sweep_id, func.max(Run.finished_at).label("latest"))
              .where(Run.status == RunStatus.DONE).group_by(Run.sweep_id).subquery())
    stale = session.scalars(
        select(Sweep.id).join(latest, latest.c.sweep_id == Sweep.id)
        .where((Sweep.analyzed_at.is_(None)) | (latest.c.latest > Sweep.analyzed_at))
    ).all()
    for sweep_id in stale:
        analyze_sweep(sweep_id, session=session)
    return list(stale)


def decay_rows(sweep: Sweep, *, session: Session) -> list[dict[str, Any]]:
    """Stored fits in the shape ``ffqueue analyze`` prints, least decay first."""
    results = session.scalars(select(DecayResult).options(joinedload(DecayResult.architecture))
                              .where(DecayResult.sweep_id == sweep.id)).all()
    rows = [
        {
            "sweep": sweep.name,
            "architecture": r.architecture.text,
            "seed": r.seed,
            "slope": r.slope,
            "intercept": r.intercept,
            "r2": r.r2,
            "stderr": r.stderr,
            "max_accuracy": r.max_accuracy,
            "params": r.architecture.params,
            "depth": r.architecture.depth,
            "mixes": r.n_mixes,
            "partial": r.partial,
        }
        for r in results
    ]
    return sorted(rows, key=lambda r: (r["slope"] is None, -(r["slope"] or 0), r["architecture"]))
