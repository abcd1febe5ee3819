"""CLI commands about sweeps: submit, run, status, results, analyze, worker, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ffqueue.cli_common import FORMATS, err, int_list, out, print_rows, progress_bar
from ffqueue.settings import Settings, get_settings

RESULT_COLUMNS = ["run", "architecture", "params", "mix", "seed", "status", "test_accuracy",
                  "epochs_done", "seconds"]
DECAY_COLUMNS = ["architecture", "params", "depth", "seed", "max_accuracy", "slope", "r2",
                 "mixes"]



def sweep_options(function: Any) -> Any:
    """The options shared by ``sweep submit`` and ``sweep run``."""
    options = [
        click.option("--preset", "presets", multiple=True, help="Preset of architectures "
                     "(repeatable), e.g. fc12."),
        click.option("--file", "sweep_file", type=click.Path(path_type=Path),
                     help="A YAML/JSON sweep file (see ffqueue/sweeps.py)."),
        click.option("--mixes", type=click.Path(path_type=Path),
                     help="Directory of mixes (mix_00 … mix_10)."),
        click.option("--epochs", type=click.IntRange(min=0), help="Epochs per run [30]."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Batch size [512]."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True),
                     help="Adam learning rate [0.001]."),
        click.option("--seeds", help="Comma-separated seeds [0]."),
        click.option("--mix-indices", help="Comma-separated mixes to use [0..10]."),
        click.option("--name", help="Sweep name [the presets]."),
        click.option("--force", is_flag=True, help="Make a new sweep even if this one exists."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def build_definition(presets: tuple[str, ...], sweep_file: Path | None, mixes: Path | None,
                     epochs: int | None, batch_size: int | None, lr: float | None,
                     seeds: str | None, mix_indices: str | None, name: str | None) -> Any:
    from ffqueue.sweeps import ALL_MIXES, TrainConfig, load_sweep_file, make_definition

    seed_list = int_list(seeds, "--seeds")
    mix_list = int_list(mix_indices, "--mix-indices")
    if sweep_file is not None:
        overrides: dict[str, Any] = {"name": name, "epochs": epochs, "batch_size": batch_size,
                                     "lr": lr, "seeds": seed_list, "mix_indices": mix_list,
                                     "mixes": str(mixes) if mixes else None,
                                     "presets": list(presets) or None}
        return load_sweep_file(sweep_file, **overrides)
    if not presets:
        raise click.UsageError("give --preset (e.g. --preset fc12) or --file SWEEP.yaml")
    if mixes is None:
        raise click.UsageError("give --mixes DIR (build mixes with `ffqueue data mixes`)")
    defaults = TrainConfig()
    train = TrainConfig(epochs=defaults.epochs if epochs is None else epochs,
                        batch_size=batch_size or defaults.batch_size, lr=lr or defaults.lr)
    return make_definition(name=name, mixes_dir=mixes, presets=list(presets),
                           seeds=seed_list or [0], mix_indices=mix_list or list(ALL_MIXES),
                           train=train)


def submit_definition(definition: Any, settings: Settings, *, force: bool = False) -> Any:
    """Create the sweep's rows, then publish its queued runs with a progress bar."""
    from ffqueue.db import require_schema, session_scope
    from ffqueue.reconciler import queued_run_ids
    from ffqueue.runner import requeue_dead_local_runs
    from ffqueue.scheduler import message_labels, publish, submit

    require_schema(settings)
    with session_scope(settings) as session:
        submission = submit(definition, session=session, force=force)
        requeued = requeue_dead_local_runs(submission.sweep_id, session=session)
        to_publish = submission.to_publish + requeued
        # Again: runs whose messages still wait in the broker need no second one.
        waiting = set() if submission.created else (queued_run_ids(settings) or set())
        messages = message_labels([r for r in to_publish if r not in waiting], session=session)
    state = "new sweep" if submission.created else "sweep already submitted"
    already = len(to_publish) - len(messages)
    err.print(f"{state} {submission.name!r} (id {submission.sweep_id}): {submission.runs} runs, "
              f"{len(messages)} to queue" + (f", {already} already queued" if already else ""),
              soft_wrap=True)
    with progress_bar() as progress:
        bar = progress.add_task("queueing runs", total=len(messages))
        publish(messages, settings=settings,
                progress=lambda i: progress.update(bar, completed=i))
    return submission


@click.group()
def sweep() -> None:
    """Submit and run sweeps."""


@sweep.command("submit")
@sweep_options
def sweep_submit(force: bool, **options: Any) -> None:
    """Queue a sweep: one run per (architecture, mix, seed). Prints the sweep id last."""
    settings = get_settings()
    submission = submit_definition(build_definition(**options), settings, force=force)
    click.echo(submission.sweep_id)


@sweep.command("run")
@sweep_options
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Worker processes [one per core on a CPU (or per FFQ_TORCH_THREADS "
                   "cores), one on a GPU].")
def sweep_run(force: bool, processes: int | None, **options: Any) -> None:
    """Submit a sweep and work through it in this command (no server needed)."""
    settings = get_settings()
    submission = submit_definition(build_definition(**options), settings, force=force)
    counts = run_embedded(submission.sweep_id, settings, processes=processes)
    err.print(f"sweep {submission.sweep_id} ended: {counts['done']} done, "
              f"{counts['failed']} failed, {counts['cancelled']} cancelled")
    click.echo(submission.sweep_id)


def run_embedded(sweep_id: int, settings: Settings, *,
                 processes: int | None = None) -> dict[str, int]:
    from ffqueue.embedded import embedded_worker, wait_for_sweep

    with embedded_worker(settings, processes=processes):
        return wait_for_sweep(sweep_id, settings, console=err)


@click.command()
@click.argument("sweep_ref", metavar="[SWEEP]", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--watch", is_flag=True, help="Refresh until every run of the sweep has ended.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
def status(sweep_ref: str | None, fmt: str, watch: bool, interval: float) -> None:
    """Show how far a sweep (default: the newest) has got: a bar per preset with
    done, running and failed runs, and an ETA from the observed run times."""
    from ffqueue.cli_report import progress_view, sweep_progress, watch_progress

    info = sweep_progress(sweep_ref, get_settings())
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
    elif watch:
        watch_progress(sweep_ref, get_settings(), interval)
    else:
        out.print(progress_view(info))


@click.command()
@click.argument("sweep_ref", metavar="[SWEEP]", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True, help="parquet needs pyarrow and --out.")
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file instead of standard output.")
@click.option("--preset", help="Only runs of this preset.")
@click.option("--architecture", help="Only runs of this architecture (text form).")
@click.option("--all", "all_sweeps", is_flag=True, help="Runs of every sweep.")
def results(sweep_ref: str | None, fmt: str, out_file: Path | None, preset: str | None,
            architecture: str | None, all_sweeps: bool) -> None:
    """Print or export one row per run of a sweep (default: the newest)."""
    from ffqueue.cli_report import export_rows
    from ffqueue.db import session_scope
    from ffqueue.results import resolve_sweep, run_rows

    if fmt == "parquet" and out_file is None:
        raise click.UsageError("--format parquet writes a file: give --out FILE")
    with session_scope(get_settings()) as session:
        found = None if all_sweeps else resolve_sweep(sweep_ref, session=session)
        rows = run_rows(found, session=session, preset=preset, architecture=architecture)
    if out_file is None:
        print_rows(rows, fmt, RESULT_COLUMNS)
    else:
        export_rows(rows, fmt, out_file)
        err.print(f"{len(rows)} runs written to {out_file}")


@click.command()
@click.argument("sweep_ref", metavar="[SWEEP]", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--ae", "autoencoder", is_flag=True,
              help="Also train a small autoencoder per class for its loss (once per sweep).")
def analyze(sweep_ref: str | None, fmt: str, autoencoder: bool) -> None:
    """Fit the decay of every architecture of a sweep now, store and print it.

    The table format also shows the means over seeds and how well each convergence
    measure ranks the classes; csv and json give one row per architecture and seed."""
    from ffqueue.cli_report import print_analysis_extras
    from ffqueue.db import session_scope
    from ffqueue.results import (
        analyze_sweep,
        class_rows,
        decay_rows,
        resolve_sweep,
        summary_rows,
    )

    with session_scope(get_settings()) as session:
        found = resolve_sweep(sweep_ref, session=session)
        analyze_sweep(found.id, session=session, autoencoder=autoencoder)
        rows = decay_rows(found, session=session)
        summaries = summary_rows(found, session=session) if fmt == "table" else []
        classes = class_rows(found, session=session) if fmt == "table" else []
        title = f"decay of sweep {found.name} (slope: accuracy per divergent fraction)"
    print_rows(rows, fmt, DECAY_COLUMNS, title=title)
    if fmt == "table":
        print_analysis_extras(summaries, classes)


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (CPU).")
@click.option("--queues", "-Q", default="train,analysis", show_default=True)
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default=None,
              help="Celery pool [solo for one process, prefork for more].")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name [celery@HOST].")
@click.option("--autoscale", default=None, metavar="MAX[,MIN]",
              help="Grow to MAX processes while runs wait, shrink to MIN (prefork).")
@click.option("--gpus", default=None, metavar="0,1|all",
              help="One worker process per GPU (concurrency 1, solo pool), pinned with "
                   "CUDA_VISIBLE_DEVICES; 'all' falls back to CPU workers without a GPU.")
def worker(concurrency: int, queues: str, pool: str | None, loglevel: str,
           hostname: str | None, autoscale: str | None, gpus: str | None) -> None:
    """Start a Celery worker that trains runs from the queue."""
    if gpus is not None:
        from worker.gpus import start_gpu_workers

        code = start_gpu_workers(gpus, queues=queues, loglevel=loglevel, hostname=hostname)
        if code is not None:
            raise SystemExit(code)
    from ffqueue.celery_app import app
    from ffqueue.cli_deploy import autoscale_argv
    from ffqueue.db import require_schema
    from ffqueue.settings import sharing_cores, use_settings

    scaling, concurrency, pool = autoscale_argv(autoscale, concurrency, pool)
    settings = get_settings()
    require_schema(settings)  # pooled connections don't cross the fork: see ffqueue.db
    use_settings(sharing_cores(settings, concurrency))  # what the forked processes read
    argv = ["worker", "--loglevel", loglevel, "--queues", queues, "--concurrency",
            str(concurrency), "--pool", pool or ("solo" if concurrency == 1 else "prefork")]
    argv += scaling
    if hostname:
        argv += ["--hostname", hostname]
    app.worker_main(argv)


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Start Celery beat (run exactly one): periodic analysis."""
    from ffqueue.celery_app import app

    schedule = get_settings().home_dir / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", loglevel, "--schedule", str(schedule)])


from ffqueue.cli_demo import demo  # noqa: E402

__all__ = ["analyze", "beat", "demo", "results", "status", "sweep", "worker"]
