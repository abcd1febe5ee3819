"""CLI commands about data: synthetic doodles, mixes, and looking at them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ffqueue.cli_common import err, print_rows


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


def synth(out_dir: Path, per_class: int, seed: int) -> list[Path]:
    """Write the synthetic doodle classes as numpy_bitmap files, with a progress bar."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles

    with _progress() as progress:
        bar = progress.add_task("drawing doodles", total=len(CONVERGENT) + len(DIVERGENT))
        return write_doodles(out_dir, per_class=per_class, seed=seed,
                             progress=lambda done, total: progress.update(bar, completed=done,
                                                                          total=total))


def build(source: Path, out_dir: Path, convergent: list[str], divergent: list[str],
          per_class: int, seed: int) -> Path:
    from ffqueue.data.mixes import build_mixes

    with _progress() as progress:
        bar = progress.add_task("building mixes", total=11)
        build_mixes(source, out_dir, convergent, divergent, per_class=per_class, seed=seed,
                    progress=lambda done, total: progress.update(bar, completed=done, total=total))
    return out_dir


def build_demo_data(data_dir: Path, *, per_class: int, seed: int) -> Path:
    """Doodles and their 11 mixes under ``data_dir``; reused when already there."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT
    from ffqueue.data.quickdraw import list_categories, open_category

    doodles = data_dir / "doodles"
    have = list_categories(doodles) if doodles.is_dir() and any(doodles.glob("*.npy")) else {}
    names = list(CONVERGENT) + list(DIVERGENT)
    if not all(n in have and len(open_category(have[n])) >= per_class for n in names):
        synth(doodles, per_class, seed)
    return build(doodles, data_dir / f"mixes-{per_class}", list(CONVERGENT), list(DIVERGENT),
                 per_class, seed)


@click.group()
def data() -> None:
    """Make, build and inspect data sets."""


@data.command("synth")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--per-class", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_synth(out_dir: Path, per_class: int, seed: int) -> None:
    """Draw the 20 synthetic doodle classes as <class>.npy bitmaps (QuickDraw's format)."""
    paths = synth(out_dir, per_class, seed)
    click.echo(f"wrote {len(paths)} classes to {out_dir}")


@data.command("mixes")
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="Directory of <class>.npy bitmaps (QuickDraw or `data synth`).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--convergent", help="10 comma-separated classes [the doodles' convergent ones].")
@click.option("--divergent", help="10 comma-separated classes [the doodles' divergent ones].")
@click.option("--per-class", type=click.IntRange(min=10), default=1000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_mixes(source: Path, out_dir: Path, convergent: str | None, divergent: str | None,
               per_class: int, seed: int) -> None:
    """Build mix_00 … mix_10 from 10 convergent and 10 divergent classes."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT

    conv = [c.strip() for c in convergent.split(",")] if convergent else list(CONVERGENT)
    div = [c.strip() for c in divergent.split(",")] if divergent else list(DIVERGENT)
    build(source, out_dir, conv, div, per_class, seed)
    click.echo(f"wrote 11 mixes to {out_dir}")


@data.command("show")
@click.argument("mixes_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def data_show(mixes_dir: Path, fmt: str) -> None:
    """List the mixes of a directory: classes, split sizes, content hash."""
    from ffqueue.data.mixes import list_mixes

    rows: list[dict[str, Any]] = [
        {"mix": m.name, "classes": list(m.classes), "train": m.n_train, "val": m.n_val,
         "test": m.n_test, "hash": m.content_hash}
        for m in list_mixes(mixes_dir)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table_rows = [{**r, "classes": ", ".join(r["classes"]), "hash": r["hash"][:12]} for r in rows]
    print_rows(table_rows, "table", ["mix", "train", "val", "test", "hash", "classes"])
