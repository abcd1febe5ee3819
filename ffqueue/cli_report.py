"""``ffqueue report``: the HTML page of a sweep's analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ffqueue.cli_common import err


@click.command()
@click.argument("sweep_ref", metavar="[SWEEP]", required=False)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("ffqueue-report"), show_default=True,
              help="Directory for index.html and figures/.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.72, show_default=True,
              help="Accuracy above which the zoomed accuracy-decay figure shows nets.")
@click.option("--analyze/--no-analyze", "analyze", default=True, show_default=True,
              help="Recompute the analysis first (else use the stored one).")
@click.option("--ae", "autoencoder", is_flag=True,
              help="Also train a small autoencoder per class for its loss (once per sweep).")
def report(sweep_ref: str | None, out_dir: Path, threshold: float, analyze: bool,
           autoencoder: bool) -> None:
    """Write a static HTML report of a sweep (default: the newest): figures, tables and
    metadata in one page that opens without a network. Prints the page's path."""
    from ffqueue.db import require_schema
    from ffqueue.report import build_report
    from ffqueue.settings import get_settings

    settings = get_settings()
    require_schema(settings)
    with err.status("drawing the report"):
        page = build_report(sweep_ref, out_dir, settings=settings, threshold=threshold,
                            analyze=analyze or autoencoder, autoencoder=autoencoder)
    click.echo(str(page.resolve()))


# ---------------------------------------------------------------- status: the live view


def sweep_progress(sweep_ref: str | None, settings: Any) -> dict[str, Any]:
    """Counts by status, per preset and in all, with ETAs in seconds (None: unknown yet)."""
    from ffqueue.db import session_scope
    from ffqueue.results import progress_rows, resolve_sweep, status_counts

    with session_scope(settings) as session:
        found = resolve_sweep(sweep_ref, session=session)
        counts = status_counts(found, session=session)
        presets = progress_rows(found, session=session)
        info: dict[str, Any] = {"sweep": found.name, "id": found.id,
                                "status": found.status.value, "total": sum(counts.values()),
                                **counts}
    etas = [p["eta_seconds"] for p in presets]
    # Workers share all presets, so the sweep's ETA is the sum of the presets' ETAs.
    info["eta_seconds"] = None if any(e is None for e in etas) else float(sum(etas))
    info["presets"] = presets
    return info


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def progress_view(info: dict[str, Any]) -> Any:
    """A Rich table: one bar per preset (ended / total) and the counts beside it."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    ended = ("done", "failed", "cancelled")
    table = Table(title=f"sweep {info['sweep']} (id {info['id']}, {info['status']})",
                  title_justify="left")
    for column in ("preset", "progress", "ended", "done", "running", "queued", "failed", "ETA"):
        table.add_column(column, justify="left" if column in ("preset", "progress") else "right")
    rows = [*info["presets"], {**info, "preset": "all"}] if len(info["presets"]) > 1 \
        else info["presets"]
    for row in rows:
        finished = sum(row[k] for k in ended)
        table.add_row(row["preset"], ProgressBar(total=max(row["total"], 1), completed=finished,
                                                 width=30),
                      f"{finished}/{row['total']}", str(row["done"]), str(row["running"]),
                      str(row["queued"]), str(row["failed"]), duration(row["eta_seconds"]))
    return table


def watch_progress(sweep_ref: str | None, settings: Any, interval: float) -> None:
    """Redraw the view every ``interval`` seconds until no run is queued or running (or
    the sweep is cancelled); a paused sweep is watched on, it may resume."""
    import time

    from rich.live import Live

    from ffqueue.cli_common import out

    info = sweep_progress(sweep_ref, settings)
    with Live(progress_view(info), console=out, auto_refresh=False) as live:
        while info["queued"] + info["running"] > 0 and info["status"] != "cancelled":
            time.sleep(interval)
            info = sweep_progress(sweep_ref, settings)
            live.update(progress_view(info), refresh=True)


# ---------------------------------------------------------------- results and analyze


def export_rows(rows: list[dict[str, Any]], fmt: str, path: Path) -> None:
    """Write rows to a file as CSV, JSON, Parquet or a text table."""
    import csv
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        from ffqueue.results import write_parquet

        write_parquet(rows, path)
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run"],
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, (list, dict)) else v
                              for k, v in row.items()} for row in rows)
    else:
        from rich.console import Console

        from ffqueue.cli_sweeps import RESULT_COLUMNS

        with path.open("w", encoding="utf-8") as f:
            _print_table(Console(file=f, width=200), rows, RESULT_COLUMNS)


def _print_table(console: Any, rows: list[dict[str, Any]], columns: list[str],
                 title: str = "") -> None:
    from rich.table import Table

    from ffqueue.cli_common import cell

    table = Table(title=title or None, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("architecture", "measure",
                                                              "class", "kind") else "right")
    for row in rows:
        table.add_row(*[cell(row.get(c)) for c in columns])
    console.print(table)


def print_analysis_extras(summaries: list[dict[str, Any]], classes: list[dict[str, Any]]) -> None:
    """After the decay table: means over seeds (when there are several) and the class
    measures' agreement with the empirical difficulty."""
    from ffqueue.cli_common import out
    from ffqueue.report import agreement

    if any(s["seeds"] > 1 for s in summaries):
        _print_table(out, summaries, ["architecture", "seeds", "slope", "slope_low",
                                      "slope_high", "max_accuracy"],
                     title="over seeds: mean slope and its 95% confidence interval")
    rows = [{"measure": m, "classes": a.classes, "spearman": a.spearman, "p_value": a.p_value,
             "auc": a.auc} for m, a in agreement(classes).items() if m != "difficulty"]
    if rows:
        _print_table(out, rows, ["measure", "classes", "spearman", "p_value", "auc"],
                     title="convergence measures: Spearman with difficulty, AUC divergent vs "
                           "convergent")
