"""CLI commands about data: synthetic doodles, mixes, and looking at them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.progress import Progress

from ffqueue.cli_common import print_rows, progress_bar

if TYPE_CHECKING:
    from ffqueue.data.rank import ClassMeasures

F = TypeVar("F", bound=Callable[..., Any])


def _progress() -> Progress:
    return progress_bar()


def synth(out_dir: Path, per_class: int, seed: int) -> list[Path]:
    """Write the synthetic doodle classes as numpy_bitmap files, with a progress bar."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles

    with _progress() as progress:
        bar = progress.add_task("drawing doodles", total=len(CONVERGENT) + len(DIVERGENT))
        return write_doodles(out_dir, per_class=per_class, seed=seed,
                             progress=lambda done, total: progress.update(bar, completed=done,
                                                                          total=total))


def build(source: Path, out_dir: Path, convergent: Sequence[str], divergent: Sequence[str],
          per_class: int, seed: int, layout: str = "npz") -> Path:
    from ffqueue.data.mixes import build_mixes

    with _progress() as progress:
        bar = progress.add_task("building mixes", total=31)
        build_mixes(source, out_dir, convergent, divergent, per_class=per_class, seed=seed,
                    layout=layout,
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


def class_options(f: F) -> F:
    """The ways to say which classes are convergent and which divergent."""
    for option in reversed([
        click.option("--convergent", help="10 comma-separated convergent classes, in mix order."),
        click.option("--divergent", help="10 comma-separated divergent classes, in mix order."),
        click.option("--classes", "classes_file", type=click.Path(path_type=Path),
                     help="A JSON/YAML file with 'convergent' and 'divergent' lists "
                          "(`data rank --auto --out FILE` writes one)."),
        click.option("--preset", type=click.Choice(["doodles", "quickdraw"]),
                     help="Shipped lists: the synthetic doodles' or our QuickDraw choice."),
        click.option("--auto", is_flag=True,
                     help="Pick the 10 lowest- and 10 highest-entropy classes of --from."),
        click.option("--sample", type=click.IntRange(min=1), default=2000, show_default=True,
                     help="Drawings per class read to compute the measures."),
    ]):
        f = option(f)
    return f


def _measure(source: Path, sample: int, seed: int) -> list[ClassMeasures]:
    from ffqueue.data.rank import measure_directory

    with _progress() as progress:
        bar = progress.add_task("measuring classes", total=None)
        return measure_directory(source, sample=sample, seed=seed,
                                 progress=lambda d, t: progress.update(bar, completed=d, total=t))


def choose_classes(source: Path, convergent: str | None, divergent: str | None,
                   classes_file: Path | None, preset: str | None, auto: bool,
                   measures: Callable[[], list[ClassMeasures]], required: bool = True
                   ) -> tuple[tuple[str, ...], tuple[str, ...], str] | None:
    """(convergent, divergent, where they came from) from exactly one of the class options.

    With none given: the preset whose classes `source` holds (the doodles, or our QuickDraw
    lists); failing that an error, or None when not `required`.
    """
    from ffqueue.data import classes
    from ffqueue.data.quickdraw import list_categories
    from ffqueue.data.rank import pick_extremes

    if (convergent is None) != (divergent is None):
        raise click.UsageError("give --convergent and --divergent together")
    given = [name for name, on in (("--convergent/--divergent", convergent is not None),
                                   ("--classes", classes_file is not None),
                                   ("--preset", preset is not None), ("--auto", auto)) if on]
    if len(given) > 1:
        raise click.UsageError(f"give only one of {', '.join(given)}")
    if convergent is not None and divergent is not None:
        conv, div = classes.check_lists(classes.parse_list(convergent),
                                        classes.parse_list(divergent))
        return conv, div, "given"
    if classes_file is not None:
        return (*classes.read_class_lists(classes_file), str(classes_file))
    if preset is not None:
        return (*classes.preset(preset), f"preset {preset}")
    if auto:
        return (*pick_extremes(measures()), "auto: lowest and highest entropy")
    detected = classes.detect_preset(list_categories(source))
    if detected is not None:
        return (*classes.preset(detected), f"preset {detected}")
    if required:
        raise click.UsageError(f"{source} holds neither the doodles' nor our QuickDraw classes: "
                               f"give --convergent/--divergent, --classes, --preset or --auto")
    return None


@data.command("mixes")
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="Directory of <class>.npy bitmaps (QuickDraw or `data synth`).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@class_options
@click.option("--per-class", type=click.IntRange(min=10), default=1000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--format", "layout", type=click.Choice(["npz", "idx"]), default="npz",
              show_default=True,
              help="npz: mix_XX.npz; idx: conv_div_mix_XX/ in MNIST idx, as Forma Fluens shared.")
def data_mixes(source: Path, out_dir: Path, convergent: str | None, divergent: str | None,
               classes_file: Path | None, preset: str | None, auto: bool, sample: int,
               per_class: int, seed: int, layout: str) -> None:
    """Build mix_00 … mix_10 from 10 convergent and 10 divergent classes.

    Without a class option the classes are the doodles' (or our QuickDraw lists) when --from
    holds them.
    """
    chosen = choose_classes(source, convergent, divergent, classes_file, preset, auto,
                            lambda: _measure(source, sample, seed))
    assert chosen is not None
    conv, div, how = chosen
    build(source, out_dir, conv, div, per_class, seed, layout)
    click.echo(f"convergent ({how}): {', '.join(conv)}", err=True)
    click.echo(f"divergent  ({how}): {', '.join(div)}", err=True)
    click.echo(f"wrote 11 mixes to {out_dir}")


@data.command("rank")
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="Directory of <class>.npy bitmaps.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@class_options
@click.option("--ae", is_flag=True, help="Also train a small autoencoder per class (torch).")
@click.option("--ae-epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--out", "out_file", type=click.Path(path_type=Path),
              help="Write the convergent/divergent lists used (JSON or YAML by suffix).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_rank(source: Path, fmt: str, convergent: str | None, divergent: str | None,
              classes_file: Path | None, preset: str | None, auto: bool, sample: int, ae: bool,
              ae_epochs: int, out_file: Path | None, seed: int) -> None:
    """Rank every class of --from by the convergence measures, most convergent first.

    Measures: entropy of the normalised average image, pixel variance of the average image,
    and with --ae the held-out loss of a per-class autoencoder.  When convergent and divergent
    lists are known (given, --auto, or the doodles'), prints how well each measure separates
    them (ROC AUC, 1.0 = perfectly).
    """
    from ffqueue.data.classes import write_class_lists
    from ffqueue.data.rank import rank_rows, separation, with_ae_losses

    measures = _measure(source, sample, seed)
    chosen = choose_classes(source, convergent, divergent, classes_file, preset, auto,
                            lambda: measures, required=out_file is not None)
    if ae:
        from worker.autoencoder import AEConfig, directory_ae_losses

        with _progress() as progress:
            bar = progress.add_task("training autoencoders", total=len(measures))
            losses = directory_ae_losses(
                source, [m.category for m in measures], sample=min(sample, 1000), seed=seed,
                config=AEConfig(epochs=ae_epochs),
                progress=lambda d, t: progress.update(bar, completed=d, total=t))
        measures = with_ae_losses(measures, losses)
    conv, div, how = chosen if chosen is not None else ((), (), "")
    rows = rank_rows(measures, conv, div)
    # JSON on stdout stays one object per category; the summary then goes to stderr.
    def say(line: str) -> None:
        click.echo(line, err=fmt == "json")

    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        # Each measure's own rank (1 = most convergent) beside its value.
        table = [{**r, "var_rank": r["rank_pixel_variance"], "ae_rank": r["rank_ae_loss"],
                  "set": r["set"] or ""} for r in rows]
        print_rows(table, "table", ["rank_entropy", "category", "entropy", "pixel_variance",
                                    "var_rank", "ae_loss", "ae_rank", "drawings", "set"],
                   title=f"{len(rows)} classes of {source}, most convergent (lowest entropy) "
                         f"first")
    if chosen is None:
        return
    say(f"convergent ({how}): {', '.join(conv)}")
    say(f"divergent  ({how}): {', '.join(div)}")
    if set(conv) | set(div) <= {m.category for m in measures}:
        aucs = separation(measures, conv, div)
        say("ROC AUC, divergent vs convergent: " + ", ".join(
            f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in aucs.items()))
    if out_file is not None:
        write_class_lists(out_file, conv, div)
        say(f"wrote the class lists to {out_file}")


@data.command("figure")
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="Directory of <class>.npy bitmaps.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), required=True,
              help="PNG file to write.")
@class_options
@click.option("--title", help="Figure title [names the directory and the sample].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_figure(source: Path, out_file: Path, convergent: str | None, divergent: str | None,
                classes_file: Path | None, preset: str | None, auto: bool, sample: int,
                title: str | None, seed: int) -> None:
    """Draw the average image of each convergent and divergent class, with its entropy."""
    from ffqueue.data.figure import average_grid
    from ffqueue.data.rank import average_images

    chosen = choose_classes(source, convergent, divergent, classes_file, preset, auto,
                            lambda: _measure(source, sample, seed))
    assert chosen is not None
    conv, div, _ = chosen
    averages = average_images(source, [*conv, *div], sample=sample, seed=seed)
    if title is None:
        title = (f"Average images of {source.resolve().name} (up to {sample} drawings a "
                 f"class); H = entropy of the normalised average, bits")
    average_grid(averages, conv, div, out_file, title=title)
    click.echo(f"wrote {out_file}")


@data.command("show")
@click.argument("mixes_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def data_show(mixes_dir: Path, fmt: str) -> None:
    """List the mixes of a directory: classes, split sizes, content hash.

    Reads our mixes (npz or idx) and the Forma Fluens download (conv_div_mix_00 …) alike.
    """
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
