"""``ffqueue report``: one static HTML page with a sweep's figures, tables and metadata.

The page is self-contained: figures are embedded as data URIs (and also written
next to it under ``figures/`` for papers), styles are inline, there is no script,
and a Content-Security-Policy forbids every network request.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ffqueue import __version__, figures
from ffqueue.analysis import measure_agreement, rankings, summarize_seeds
from ffqueue.db import session_scope
from ffqueue.errors import DataError
from ffqueue.figures import RHO
from ffqueue.models import Architecture, Dataset, Run, RunStatus, Sweep
from ffqueue.results import (
    analyze_sweep,
    class_rows,
    curve_rows,
    decay_rows,
    load_average_images,
    progress_rows,
    resolve_sweep,
    summary_rows,
    sweep_classes,
)
from ffqueue.settings import Settings, get_settings

log = logging.getLogger(__name__)

ZOOM_THRESHOLD = 0.72  # the article zooms on the nets above this accuracy
TOP = 10  # rows in each ranking table


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    path: Path | None = None
    note: str = ""  # why the figure is missing


def family(spec: Sequence[dict[str, Any]]) -> str:
    """``fully connected`` when every layer is fc (the perceptron too), else ``CNN``."""
    return "fully connected" if all(layer["type"] == "fc" for layer in spec) else "CNN"


def collect(sweep: Sweep, *, session: Session, settings: Settings) -> dict[str, Any]:
    """Everything the page shows, read in one transaction."""
    summaries = summary_rows(sweep, session=session)
    for row in summaries:
        row["family"] = family(row["spec"])
    classes = class_rows(sweep, session=session)
    return {
        "sweep": sweep, "summaries": summaries, "fits": decay_rows(sweep, session=session),
        "curves": curve_rows(sweep, session=session), "classes": classes,
        "kinds": sweep_classes(sweep, session=session), "progress": progress_rows(
            sweep, session=session), "datasets": _datasets(sweep, session),
        "machines": _machines(sweep, session), "timings": _timings(sweep, session),
        "perceptron": _perceptron_weights(sweep, session, settings),
    }


def _datasets(sweep: Sweep, session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(Dataset).where(Dataset.id.in_(
        select(Run.dataset_id).where(Run.sweep_id == sweep.id))).order_by(Dataset.mix_index))
    return [{"mix": d.name, "classes": ", ".join(d.classes), "train": d.n_train, "val": d.n_val,
             "test": d.n_test, "content hash": d.content_hash} for d in rows]


def _machines(sweep: Sweep, session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Run.host, Run.device, Run.torch_version, func.count(), func.sum(Run.train_seconds))
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE)
        .group_by(Run.host, Run.device, Run.torch_version).order_by(Run.host, Run.device)).all()
    return [{"host": h, "device": d, "torch": t, "runs": n, "train seconds": s}
            for h, d, t, n, s in rows]


def _timings(sweep: Sweep, session: Session) -> dict[str, Any]:
    first, last, total, mean, n = session.execute(
        select(func.min(Run.started_at), func.max(Run.finished_at), func.sum(Run.train_seconds),
               func.avg(Run.train_seconds), func.count())
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE)).one()
    wall = (last - first).total_seconds() if first and last else None
    return {"runs done": n, "first run started": first, "last run finished": last,
            "wall-clock seconds": wall, "training seconds (sum)": total,
            "mean seconds per run": mean}


def _perceptron_weights(sweep: Sweep, session: Session, settings: Settings
                        ) -> tuple[dict[int, np.ndarray], dict[int, list[str]]] | None:
    """The perceptron's final weights per mix (lowest seed), where the files exist."""
    from ffqueue.runner import weights_path

    runs = session.execute(
        select(Run.id, Run.seed, Dataset.mix_index, Dataset.classes, Architecture.spec)
        .join(Architecture, Architecture.id == Run.architecture_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.sweep_id == sweep.id, Run.status == RunStatus.DONE)
        .order_by(Run.seed, Dataset.mix_index)).all()
    chosen = [r for r in runs if r.spec == []]
    if not chosen:
        return None
    seed = chosen[0].seed
    paths = {r.mix_index: (weights_path(settings, r.id), list(r.classes)) for r in chosen
             if r.seed == seed}
    present = {mix: item for mix, item in paths.items() if item[0].is_file()}
    if not present:
        return None
    import torch

    weights = {}
    for mix, (path, _) in present.items():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            # The perceptron is one Linear layer: its (10, 784) weight, whatever its key.
            weights[mix] = next(t.numpy() for t in state.values()
                                if tuple(t.shape) == (10, 28 * 28))
        except (OSError, RuntimeError, StopIteration, AttributeError) as exc:
            log.warning("skipping the perceptron weights in %s: %s", path, exc)
    if not weights:
        return None
    return weights, {mix: present[mix][1] for mix in weights}


def agreement(classes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Spearman with difficulty and AUC divergent vs convergent, per measure."""
    difficulty = {r["class"]: r["difficulty"] for r in classes}
    kinds = {r["class"]: r["kind"] for r in classes}
    out = {}
    for measure in ("difficulty", "entropy", "pixel_variance", "ae_loss"):
        values = {r["class"]: r[measure] for r in classes}
        if all(v is None for v in values.values()):
            continue
        out[measure] = measure_agreement(measure, values, difficulty, kinds)
    return out


def make_figures(data: dict[str, Any], out: Path, threshold: float) -> list[Figure]:
    """Draw every figure into ``out``; a figure that cannot be drawn says why."""
    sweep: Sweep = data["sweep"]
    summaries = data["summaries"]
    kinds = data["kinds"]
    convergent = [c for c, k in kinds.items() if k == "convergent"]
    divergent = [c for c, k in kinds.items() if k == "divergent"]
    order = _class_order(data)
    fc = {s["architecture"] for s in summaries if s["family"] == "fully connected"}
    cnn = {s["architecture"] for s in summaries if s["family"] == "CNN"}
    params = {s["architecture"]: s["params"] for s in summaries}
    entropy = {r["class"]: r["entropy"] for r in data["classes"]}
    points = [{**s} for s in summaries]
    items: list[tuple[Figure, Callable[[Path], Path] | None]] = []

    def add(key: str, title: str, caption: str, draw: Callable[[Path], Path] | None,
            note: str = "") -> None:
        items.append((Figure(key, title, caption, note=note), draw))

    try:
        images = load_average_images(sweep.mixes_dir, convergent + divergent)
        add("average_images", "Convergent and divergent classes",
            "The average image of every class, with the entropy of its normalised "
            "histogram (bits). Sharp averages are convergent, blurry ones divergent.",
            lambda p: figures.average_images(images, _ordered(convergent, order),
                                             _ordered(divergent, order), p, entropy))
    except (DataError, OSError) as exc:
        add("average_images", "Convergent and divergent classes", "", None,
            f"the mixes at {sweep.mixes_dir} cannot be read: {exc}")
    add("fc_decay", "Decay of the fully-connected nets",
        "Test accuracy (mean over seeds) against the number of divergent classes in the mix, "
        "one line per net; the perceptron in grey.",
        (lambda p: figures.fc_decay({a: data["curves"][a] for a in fc if a in data["curves"]},
                                    params, p)) if fc else None,
        "" if fc else "the sweep has no fully-connected nets")
    weights = data["perceptron"]
    add("perceptron_weights", "The perceptron's positive weights",
        "Each tile is the positive part of the perceptron's weights for one class (row) "
        "trained on one mix (column); empty tiles: the class is not in that mix.",
        (lambda p: figures.perceptron_weights(weights[0], weights[1], order, kinds, p))
        if weights else None,
        "" if weights else "no perceptron runs with saved weights (FFQ_ARTIFACT_DIR)")
    glyphs = [{"architecture": s["architecture"], "max_accuracy": s["max_accuracy"],
               "glyph": _glyph(s["spec"])} for s in summaries if s["architecture"] in cnn]
    add("cnn_glyphs", "CNN architectures by accuracy",
        "Each column is a CNN, its layers from top to bottom: convolution blue, pooling red, "
        "dropout orange, fully connected green (the last is the 10-way output). Sorted by "
        "max accuracy, shown above.",
        (lambda p: figures.architecture_glyphs(glyphs, p)) if glyphs else None,
        "" if glyphs else "the sweep has no CNNs")
    fits = {s["architecture"]: _mean_fit(data["fits"], s["architecture"]) for s in summaries}
    add("cnn_decay", "Decay of the CNNs and their linear fits",
        "Left: test accuracy against the number of divergent classes. Right: the "
        "least-squares line of each curve; its slope is the model's decay.",
        (lambda p: figures.cnn_decay({a: data["curves"][a] for a in cnn if a in data["curves"]},
                                     {a: fits[a] for a in cnn}, p)) if cnn else None,
        "" if cnn else "the sweep has no CNNs")
    add("accuracy_vs_decay", "Max accuracy against decay",
        "Every net: the best test accuracy over the mixes against its decay slope; the "
        "radius of a marker grows with the net's depth.",
        lambda p: figures.accuracy_vs_decay(points, p))
    add("accuracy_vs_decay_zoom", f"Nets with accuracy above {threshold:g}",
        f"The previous figure, zoomed on the nets whose max accuracy is at least {threshold:g}.",
        lambda p: figures.accuracy_vs_decay(points, p, threshold=threshold))
    add("params_vs_decay", "Complexity against decay",
        "Trainable parameters (log scale) against the decay slope; marker size grows "
        "with max accuracy.", lambda p: figures.params_vs_decay(points, p))
    agree = {m: (a.spearman if m != "difficulty" else None, a.auc)
             for m, a in agreement(data["classes"]).items()}
    add("convergence_rankings", "Convergence measures against empirical difficulty",
        f"Classes ranked by each measure. {RHO}: Spearman rank correlation with the empirical "
        "difficulty (1 - per-class test accuracy over all runs); AUC: how well the measure "
        "separates the divergent from the convergent classes (0.5 = chance, 0 or 1 = "
        "perfect).", (lambda p: figures.convergence_rankings(data["classes"], agree, p))
        if data["classes"] else None, "" if data["classes"] else "no class results yet")
    made = []
    for figure, draw in items:
        if draw is not None:
            figure.path = draw(out / "figures" / f"{figure.key}.png")
        made.append(figure)
    return made


def _glyph(spec: Sequence[dict[str, Any]]) -> list[str]:
    from ffqueue.specs import parse_spec

    return parse_spec(list(spec)).glyph()


def _class_order(data: dict[str, Any]) -> list[str]:
    """Classes as mix_00 then mix_10 list them (convergent first)."""
    order: list[str] = []
    for row in sorted(data["datasets"], key=lambda d: d["mix"]):
        for name in row["classes"].split(", "):
            if name not in order:
                order.append(name)
    return order


def _ordered(names: list[str], order: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def _mean_fit(fits: list[dict[str, Any]], arch: str) -> tuple[float | None, float | None]:
    rows = [f for f in fits if f["architecture"] == arch and f["slope"] is not None]
    if not rows:
        return None, None
    return (float(np.mean([f["slope"] for f in rows])),
            float(np.mean([f["intercept"] for f in rows])))


def build_report(sweep_ref: str | int | None, out: Path, *, settings: Settings | None = None,
                 threshold: float = ZOOM_THRESHOLD, analyze: bool = True,
                 autoencoder: bool = False) -> Path:
    """Write ``out/index.html`` (and ``out/figures/*.png``) for a sweep; the page's path."""
    settings = settings or get_settings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with session_scope(settings) as session:
        sweep = resolve_sweep(sweep_ref, session=session)
        if analyze:
            analyze_sweep(sweep.id, session=session, autoencoder=autoencoder)
    with session_scope(settings) as session:
        sweep = resolve_sweep(sweep.id, session=session)
        data = collect(sweep, session=session, settings=settings)
    figs = make_figures(data, out, threshold)
    page = out / "index.html"
    page.write_text(render(data, figs, settings=settings, threshold=threshold,
                           summaries=_rankings(data["summaries"])), encoding="utf-8")
    return page


def _rankings(summaries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_name = {s["architecture"]: s for s in summaries}
    ranked = rankings([summarize_seeds(s["architecture"], [s["slope"]], [s["max_accuracy"]],
                                       [s["partial"]]) for s in summaries])
    return {key: [by_name[a] for a in names[:TOP]] for key, names in ranked.items()}


def png_width(path: Path) -> int:
    """Pixel width from a PNG's header (bytes 16 to 20 of the IHDR chunk)."""
    return int.from_bytes(Path(path).read_bytes()[16:20], "big")


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def text(value: Any) -> str:
    """A table cell: escaped, floats to 4 places, datetimes to seconds."""
    if value is None:
        return "\u2013"  # en dash
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


# ---------------------------------------------------------------- HTML

TEMPLATE = Path(__file__).parent / "templates" / "report.html"
SUMMARY_COLUMNS = [("architecture", "architecture"), ("family", "family"), ("params", "params"),
                   ("depth", "depth"), ("seeds", "seeds"), ("slope", "decay slope"),
                   ("slope_low", "CI low"), ("slope_high", "CI high"),
                   ("max_accuracy", "max accuracy"), ("partial", "partial")]
FIT_COLUMNS = [("architecture", "architecture"), ("seed", "seed"), ("slope", "slope"),
               ("intercept", "intercept"), ("r2", "r²"), ("stderr", "stderr"),
               ("max_accuracy", "max accuracy"), ("mixes", "mixes"), ("partial", "partial")]
CLASS_COLUMNS = [("class", "class"), ("kind", "kind"), ("accuracy", "accuracy"),
                 ("difficulty", "difficulty"), ("entropy", "entropy (bits)"),
                 ("pixel_variance", "pixel variance"), ("ae_loss", "AE loss"), ("runs", "runs")]
PROGRESS_COLUMNS = [(k, k) for k in ("preset", "total", "done", "running", "queued", "failed",
                                     "cancelled", "mean_seconds")]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
          numeric: bool = True) -> str:
    """An HTML table of ``rows``; ``columns`` are (key, heading)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"n" if numeric and isinstance(row.get(k), (int, float)) else "t"}">'
            f"{text(row.get(k))}</td>" for k, _ in columns) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(values: dict[str, Any]) -> str:
    return table([{"key": k, "value": v} for k, v in values.items()],
                 [("key", "setting"), ("value", "value")], numeric=False)


def render(data: dict[str, Any], figs: Sequence[Figure], *, settings: Settings,
           threshold: float, summaries: dict[str, list[dict[str, Any]]]) -> str:
    """The page as one string: figures embedded, every value escaped."""
    from string import Template

    sweep: Sweep = data["sweep"]
    sections = []
    for fig in figs:
        if fig.path is not None:
            # Shown at the size it was drawn for (DPI), not one screen pixel per pixel.
            width = round(png_width(fig.path) * 96 / figures.DPI)
            body = (f'<img src="{data_uri(fig.path)}" width="{width}" '
                    f'alt="{html.escape(fig.title)}">'
                    f"<figcaption>{html.escape(fig.caption)} "
                    f'<a href="figures/{fig.path.name}">PNG</a></figcaption>')
        else:
            body = f'<p class="missing">Not drawn: {html.escape(fig.note)}.</p>'
        sections.append(f'<figure id="{fig.key}"><h3>{html.escape(fig.title)}</h3>{body}'
                        "</figure>")
    # Difficulty against itself has rho 1: only its AUC says something.
    agree = [{"measure": m, "classes": a.classes,
              "spearman": None if m == "difficulty" else a.spearman,
              "p": None if m == "difficulty" else a.p_value, "auc": a.auc}
             for m, a in agreement(data["classes"]).items()]
    meta = {"sweep": f"{sweep.name} (id {sweep.id})", "status": sweep.status.value,
            "created": sweep.created_at, "analysed": sweep.analyzed_at,
            "code version (sweep)": sweep.code_version, "ffqueue (report)": __version__,
            "training": sweep.config, "mixes": sweep.mixes_dir,
            "zoom threshold": threshold}
    values = {
        "title": html.escape(f"ffqueue report: {sweep.name}"),
        "sweep": html.escape(sweep.name),
        "meta": key_values(meta),
        "progress": table(data["progress"], PROGRESS_COLUMNS),
        "least_decay": table(summaries["least_decay"], SUMMARY_COLUMNS[:6] + SUMMARY_COLUMNS[8:9]),
        "best_accuracy": table(summaries["best_accuracy"],
                               SUMMARY_COLUMNS[:6] + SUMMARY_COLUMNS[8:9]),
        "figures": "\n".join(sections),
        "models": table(data["summaries"], SUMMARY_COLUMNS),
        "fits": table(data["fits"], FIT_COLUMNS),
        "agreement": table(agree, [("measure", "measure"), ("classes", "classes"),
                                   ("spearman", f"Spearman {RHO} with difficulty"),
                                   ("p", "p-value"), ("auc", "ROC AUC divergent vs convergent")]),
        "classes": table(data["classes"], CLASS_COLUMNS),
        "datasets": table(data["datasets"], [(k, k) for k in ("mix", "classes", "train", "val",
                                                               "test", "content hash")]),
        "machines": table(data["machines"], [(k, k) for k in ("host", "device", "torch", "runs",
                                                               "train seconds")]),
        "timings": key_values(data["timings"]),
        "settings": key_values(settings.masked()),
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)


__all__ = ["ZOOM_THRESHOLD", "Figure", "build_report", "collect", "make_figures", "render"]
