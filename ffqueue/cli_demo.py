"""``ffqueue demo``: the whole path on embedded defaults, in one command."""

from __future__ import annotations

from pathlib import Path

import click

from ffqueue.cli_common import err, out, print_rows

DEMO_EPOCHS = 5  # enough for the decay to show in a few minutes; the article used 30
DEMO_PER_CLASS = 1000  # drawings per class in each mix (train + validation + test)


@click.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("ffqueue-demo"),
              show_default=True, help="Where the database, queue, data and weights go.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEMO_EPOCHS, show_default=True)
@click.option("--per-class", type=click.IntRange(min=50), default=DEMO_PER_CLASS,
              show_default=True, help="Drawings per class in each mix.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def demo(directory: Path, epochs: int, per_class: int, seed: int) -> None:
    """Train the 12 fully-connected nets on 11 synthetic mixes and print their decay.

    No server is needed: results go to an SQLite file and runs go through Celery on a
    folder queue, consumed by a worker inside this command. Run it again and nothing
    is trained twice.
    """
    from ffqueue import db
    from ffqueue.cli_data import build_demo_data
    from ffqueue.cli_sweeps import DECAY_COLUMNS, run_embedded, submit_definition
    from ffqueue.db import session_scope
    from ffqueue.results import analyze_sweep, decay_rows
    from ffqueue.settings import load_settings, use_settings
    from ffqueue.sweeps import TrainConfig, make_definition

    # Everything under DIR, whatever FFQ_* says: the demo must not touch a real server.
    settings = load_settings(home=directory, database_url="", broker_url="", data_dir=None,
                             artifact_dir=None, env="local")
    use_settings(settings)
    err.print(f"[bold]ffqueue demo[/] in {settings.home_dir}")
    db.upgrade(settings)
    mixes_dir = build_demo_data(settings.effective_data_dir, per_class=per_class, seed=seed)
    definition = make_definition(name="demo", mixes_dir=mixes_dir, presets=["fc12"],
                                 seeds=[seed], train=TrainConfig(epochs=epochs))
    submission = submit_definition(definition, settings)
    counts = run_embedded(submission.sweep_id, settings)
    with session_scope(settings) as session:
        from ffqueue.models import Sweep

        sweep = session.get_one(Sweep, submission.sweep_id)
        analyze_sweep(sweep.id, session=session)
        rows = decay_rows(sweep, session=session)
    print_rows(rows, "table", DECAY_COLUMNS,
               title="Model decay on synthetic doodles (slope of test accuracy on the "
                     "divergent fraction; negative = decays)")
    negative = sum(1 for r in rows if r["slope"] is not None and r["slope"] < 0)
    out.print(f"{negative} of {len(rows)} nets decay (negative slope); runs: "
              f"{counts['done']} done, {counts['failed']} failed.")
    out.print(f"database:  {settings.effective_database_url}")
    out.print(f"mixes:     {mixes_dir}")
    out.print(f"weights:   {settings.effective_artifact_dir}")
    out.print("see the runs with `ffqueue results`, the fits with `ffqueue analyze`, after:")
    click.echo(f"export FFQ_DATABASE_URL={settings.effective_database_url}")
