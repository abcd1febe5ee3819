"""Reading results and storing the analysis: the database side of ``analysis.py``.

``analyze_sweep`` is what ``ffqueue analyze``, the ``analyze`` task and beat's
``analyze_all`` call: it replaces a sweep's decay fits (``decay_results``) and class
results (``class_results``) in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from ffqueue.analysis import (
    ModelSummary,
    eta_seconds,
    fit_decay,
    image_measures,
    mean_class_accuracy,
    summarize_seeds,
)
from ffqueue.errors import DataError, NotFoundError
from ffqueue.models import (
    Architecture,
    ClassResult,
    Dataset,
    DecayResult,
    Run,
    RunStatus,
    Sweep,
    utcnow,
)

log = logging.getLogger(__name__)


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


def progress_rows(sweep: Sweep, *, session: Session) -> list[dict[str, Any]]:
    """Per preset: runs by status, mean seconds of a done run and an ETA.

    The ETA spreads the runs not yet ended over the workers training this sweep now
    (at least one), at the preset's observed mean run time (the sweep's when the preset
    has no finished run yet).
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in RunStatus})
    for preset, status, n in session.execute(
            select(Run.preset, Run.status, func.count()).where(Run.sweep_id == sweep.id)
            .group_by(Run.preset, Run.status)).all():
        counts[preset][status.value] = n
    means: dict[str, float] = dict(session.execute(
        select(Run.preset, func.avg(Run.train_seconds))
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE,
               Run.train_seconds.is_not(None)).group_by(Run.preset)).all())
    overall = session.scalar(select(func.avg(Run.train_seconds)).where(
        Run.sweep_id == sweep.id, Run.status == RunStatus.DONE, Run.train_seconds.is_not(None)))
    workers = session.scalar(select(func.count(func.distinct(Run.worker))).where(
        Run.sweep_id == sweep.id, Run.status == RunStatus.RUNNING)) or 0
    rows = []
    for preset in sorted(counts):
        c = counts[preset]
        mean = means.get(preset, overall)
        remaining = c["queued"] + c["running"]
        rows.append({"preset": preset, "total": sum(c.values()), **c,
                     "mean_seconds": None if mean is None else float(mean),
                     "eta_seconds": eta_seconds(remaining, None if mean is None else float(mean),
                                                workers)})
    return rows


# ---------------------------------------------------------------- analysis


def analyze_sweep(sweep_id: int, *, session: Session, classes: bool = True,
                  autoencoder: bool = False) -> list[DecayResult]:
    """Fit every (architecture, seed) curve of a sweep and replace its stored fits.

    With ``classes``, also recompute the per-class accuracies and convergence measures
    (``analyze_classes``; ``autoencoder`` adds the autoencoder loss).
    """
    # The row lock serialises two analyses of one sweep (two ticks, or a tick and
    # `ffqueue analyze`) on PostgreSQL; SQLite has one writer anyway.
    sweep = session.get(Sweep, sweep_id, with_for_update=True)
    if sweep is None:
        raise NotFoundError(f"no sweep {sweep_id}")
    curves: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    done = session.execute(
        select(Run.architecture_id, Run.seed, Dataset.mix_index, Run.test_accuracy)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.sweep_id == sweep_id, Run.status == RunStatus.DONE,
               Run.test_accuracy.is_not(None))
    ).all()
    for row in done:
        curves[(row.architecture_id, row.seed)].append((row.mix_index, row.test_accuracy))
    session.execute(delete(DecayResult).where(DecayResult.sweep_id == sweep_id))
    stored = []
    for (arch_id, seed), points in sorted(curves.items()):
        mixes, accuracies = zip(*sorted(points), strict=True)
        fit = fit_decay(mixes, accuracies)
        result = DecayResult(sweep_id=sweep_id, architecture_id=arch_id, seed=seed,
                             n_mixes=len(points), max_accuracy=max(accuracies),
                             partial=len(set(mixes)) < 11)
        if fit is not None:
            result.slope, result.intercept = fit.slope, fit.intercept
            result.r2, result.stderr = fit.r2, fit.stderr
        session.add(result)
        stored.append(result)
    if classes:
        analyze_classes(sweep, session=session, autoencoder=autoencoder)
    sweep.analyzed_at = utcnow()
    session.flush()
    return stored


def analyze_stale_sweeps(*, session: Session) -> list[int]:
    """Analyse the sweeps with results that their stored analysis has not seen; their ids.

    A sweep is stale when a run finished after its last analysis, or when the number
    of done runs differs from the number its fits cover: the count catches a run that
    committed late with an earlier ``finished_at`` than one already analysed.
    """
    done = (select(Run.sweep_id, func.count().label("n"),
                   func.max(Run.finished_at).label("latest"))
            .where(Run.status == RunStatus.DONE, Run.test_accuracy.is_not(None))
            .group_by(Run.sweep_id).subquery())
    fitted = (select(DecayResult.sweep_id, func.sum(DecayResult.n_mixes).label("n"))
              .group_by(DecayResult.sweep_id).subquery())
    stale = session.scalars(
        select(Sweep.id).join(done, done.c.sweep_id == Sweep.id)
        .outerjoin(fitted, fitted.c.sweep_id == Sweep.id)
        .where(Sweep.analyzed_at.is_(None) | (done.c.latest > Sweep.analyzed_at)
               | fitted.c.n.is_(None) | (fitted.c.n != done.c.n))
        .order_by(Sweep.id)
    ).all()
    for sweep_id in stale:
        analyze_sweep(sweep_id, session=session)
    return list(stale)


def sweep_classes(sweep: Sweep, *, session: Session) -> dict[str, str]:
    """Every class in the sweep's mixes and its kind: convergent, divergent or other.

    mix_00's classes are the convergent ones and mix_10's the divergent ones. A sweep
    without those mixes still knows: mix_k holds the first 10-k convergent classes
    followed by k divergent ones.
    """
    datasets = session.scalars(select(Dataset).where(
        Dataset.id.in_(select(Run.dataset_id).where(Run.sweep_id == sweep.id)))
        .order_by(Dataset.mix_index)).all()
    kinds: dict[str, str] = {}
    for dataset in datasets:
        for position, name in enumerate(dataset.classes):
            kind = "convergent" if position < len(dataset.classes) - dataset.mix_index \
                else "divergent"
            kinds.setdefault(name, kind)
    for dataset in datasets:
        if dataset.mix_index in (0, 10):
            for name in dataset.classes:
                kinds[name] = "convergent" if dataset.mix_index == 0 else "divergent"
    return kinds


def load_class_drawings(mixes_dir: str | Path, classes: list[str]) -> dict[str, np.ndarray]:
    """All drawings ((N, 784) uint8, every split) of each class in a mixes directory.

    Every mix holds the same drawings of a class, so a few mixes cover all classes:
    mixes are read in index order until each wanted class has been seen.
    """
    from ffqueue.data.mixes import list_mixes, load_mix

    wanted = set(classes)
    drawings: dict[str, np.ndarray] = {}
    for info in list_mixes(Path(mixes_dir)):
        if not (wanted - set(drawings)) & set(info.classes):
            continue
        mix = load_mix(Path(mixes_dir), info.index)
        x = np.concatenate([mix.x_train, mix.x_val, mix.x_test])
        y = np.concatenate([mix.y_train, mix.y_val, mix.y_test])
        for label, name in enumerate(mix.classes):
            if name in wanted and name not in drawings and np.any(y == label):
                drawings[name] = x[y == label]
    return drawings


def load_average_images(mixes_dir: str | Path, classes: list[str]) -> dict[str, np.ndarray]:
    """The average image of each class over all its drawings in a mixes directory."""
    from ffqueue.measures import average_image

    return {name: average_image(x) for name, x in load_class_drawings(mixes_dir, classes).items()}


def autoencoder_loss(drawings: np.ndarray, seed: int = 0) -> float:
    """Held-out L2 loss of the article's per-class autoencoder (``worker.autoencoder``)."""
    import torch

    from ffqueue.data.rank import sample_drawings
    from worker.autoencoder import DEFAULT_SAMPLE, train_autoencoder

    sample = sample_drawings(drawings, DEFAULT_SAMPLE, seed, "class")
    # Batches of 64 x 784 gain nothing from threads, and on a busy machine a second
    # thread made this 40x slower (measured): one thread, then back as it was.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return float(train_autoencoder(sample, seed=seed).test_loss)
    finally:
        torch.set_num_threads(threads)


def analyze_classes(sweep: Sweep, *, session: Session,
                    autoencoder: bool = False) -> list[ClassResult]:
    """Replace the sweep's class results: accuracy from the confusion matrices, and the
    image measures (computed once from the sweep's mixes, then kept). With
    ``autoencoder``, also train a small autoencoder per class for its loss (torch; kept
    too, so later analyses show it without training again)."""
    from ffqueue.measures import average_image

    kinds = sweep_classes(sweep, session=session)
    confusions = session.execute(
        select(Dataset.classes, Run.confusion).join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE,
               Run.confusion.is_not(None))).all()
    accuracy = mean_class_accuracy((row.classes, row.confusion) for row in confusions)
    measures: dict[str, dict[str, float | None]] = {
        c.class_name: {"entropy": c.entropy, "pixel_variance": c.pixel_variance,
                       "ae_loss": c.ae_loss}
        for c in session.scalars(select(ClassResult).where(ClassResult.sweep_id == sweep.id))}
    missing = [name for name in kinds
               if measures.get(name, {}).get("entropy") is None
               or (autoencoder and measures.get(name, {}).get("ae_loss") is None)]
    if missing:
        try:
            drawings = load_class_drawings(sweep.mixes_dir, missing)
        except (DataError, OSError) as exc:
            # The analysis host may lack the data; accuracies are still worth storing.
            log.warning("sweep %s: no class measures, cannot read mixes: %s", sweep.id, exc)
            drawings = {}
        for name, x in drawings.items():
            known = measures.setdefault(name, {"ae_loss": None})
            known.update(image_measures(average_image(x)))
            if autoencoder and known.get("ae_loss") is None:
                known["ae_loss"] = autoencoder_loss(x)
    session.execute(delete(ClassResult).where(ClassResult.sweep_id == sweep.id))
    session.flush()
    rows = []
    for name, kind in sorted(kinds.items()):
        m = measures.get(name, {})
        acc = accuracy.get(name)
        rows.append(ClassResult(sweep_id=sweep.id, class_name=name, kind=kind,
                                entropy=m.get("entropy"), pixel_variance=m.get("pixel_variance"),
                                ae_loss=m.get("ae_loss"),
                                accuracy=None if acc is None else acc.accuracy,
                                n_runs=0 if acc is None else acc.runs))
    session.add_all(rows)
    return rows


# ---------------------------------------------------------------- reading the analysis


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


def model_summaries(sweep: Sweep, *, session: Session,
                    confidence: float = 0.95) -> list[ModelSummary]:
    """Each architecture's decay and best accuracy over its seeds, least decay first."""
    by_arch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in decay_rows(sweep, session=session):
        by_arch[row["architecture"]].append(row)
    summaries = [summarize_seeds(arch, [r["slope"] for r in rows],
                                 [r["max_accuracy"] for r in rows], [r["partial"] for r in rows],
                                 confidence) for arch, rows in by_arch.items()]
    return sorted(summaries, key=lambda s: (s.slope is None,
                                            -(s.slope.mean if s.slope else 0), s.architecture))


def summary_rows(sweep: Sweep, *, session: Session) -> list[dict[str, Any]]:
    """``model_summaries`` as flat rows, with params and depth."""
    archs = {a.text: a for a in session.scalars(select(Architecture).where(
        Architecture.id.in_(select(Run.architecture_id).where(Run.sweep_id == sweep.id))))}
    rows = []
    for s in model_summaries(sweep, session=session):
        arch = archs[s.architecture]
        rows.append({"architecture": s.architecture, "params": arch.params, "depth": arch.depth,
                     "spec": arch.spec, "seeds": s.seeds, "fitted": s.fitted,
                     "slope": s.slope.mean if s.slope else None,
                     "slope_low": s.slope.low if s.slope else None,
                     "slope_high": s.slope.high if s.slope else None,
                     "max_accuracy": s.max_accuracy.mean if s.max_accuracy else None,
                     "max_accuracy_low": s.max_accuracy.low if s.max_accuracy else None,
                     "max_accuracy_high": s.max_accuracy.high if s.max_accuracy else None,
                     "partial": s.partial})
    return rows


def curve_rows(sweep: Sweep, *, session: Session) -> dict[str, dict[int, float]]:
    """Mean test accuracy over seeds, per architecture and mix index."""
    rows = session.execute(
        select(Architecture.text, Dataset.mix_index, func.avg(Run.test_accuracy))
        .join(Architecture, Architecture.id == Run.architecture_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE,
               Run.test_accuracy.is_not(None))
        .group_by(Architecture.text, Dataset.mix_index)).all()
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for text, mix, accuracy in rows:
        curves[text][mix] = float(accuracy)
    return dict(curves)


def class_rows(sweep: Sweep, *, session: Session) -> list[dict[str, Any]]:
    """Stored class results, hardest class (lowest accuracy) first."""
    rows = [{"class": c.class_name, "kind": c.kind, "entropy": c.entropy,
             "pixel_variance": c.pixel_variance, "ae_loss": c.ae_loss, "accuracy": c.accuracy,
             "difficulty": None if c.accuracy is None else 1.0 - c.accuracy, "runs": c.n_runs}
            for c in session.scalars(select(ClassResult).where(ClassResult.sweep_id == sweep.id))]
    return sorted(rows, key=lambda r: (r["accuracy"] is None, r["accuracy"] or 0.0, r["class"]))


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as a Parquet file; needs the optional ``pyarrow``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("Parquet export needs pyarrow: pip install pyarrow") from None
    pq.write_table(pa.Table.from_pylist(rows), str(path))
