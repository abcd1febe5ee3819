"""The ``ffqueue`` command line.

Torch, Celery workers and the data generators are imported inside the commands that
need them, so ``ffqueue --help`` answers at once. Every error reaches the user as one
line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from ffqueue.cli_common import FORMATS, cell, err, out, print_rows
from ffqueue.errors import FFQueueError
from ffqueue.settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ffqueue")
def cli() -> None:
    """ffqueue: a job queue for model-decay experiments.

    Settings come from FFQ_* environment variables (see `ffqueue config`). With none
    set, everything runs locally: an SQLite file and a folder queue under ./ffqueue-data.
    """


# ---------------------------------------------------------------- config and database


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def config(fmt: str) -> None:
    """Print the effective settings, passwords masked."""
    values = get_settings().masked()
    if fmt == "json":
        click.echo(json.dumps(values, indent=2))
        return
    table = Table("setting", "value")
    for key, value in values.items():
        table.add_row(f"FFQ_{key.upper()}", cell(value))
    out.print(table)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision.")
def db_upgrade(revision: str) -> None:
    """Migrate the database at FFQ_DATABASE_URL to the latest schema."""
    from ffqueue import db as database
    from ffqueue.settings import mask_url

    settings = get_settings()
    at = database.upgrade(settings, revision)
    click.echo(f"database {mask_url(settings.effective_database_url)} is at revision {at}")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    from ffqueue import db as database

    click.echo(database.current_revision(get_settings()) or "empty")


# ---------------------------------------------------------------- architectures


@cli.command()
@click.option("--preset", "presets", multiple=True, default=["fc12"], show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def archs(presets: tuple[str, ...], fmt: str) -> None:
    """List the architectures of a preset."""
    from ffqueue.specs import preset

    rows = [{"preset": name, "architecture": a.text, "spec": a.layers, "params": a.params,
             "depth": a.depth, "hash": a.hash} for name in presets for a in preset(name)]
    print_rows(rows, fmt, ["preset", "architecture", "params", "depth"])


# ---------------------------------------------------------------- sweeps

from ffqueue.cli_sweeps import analyze, beat, demo, results, status, sweep, worker  # noqa: E402

for command in (sweep, status, results, analyze, worker, beat, demo):
    cli.add_command(command)

from ffqueue.cli_data import data  # noqa: E402

cli.add_command(data)
from ffqueue.cli_report import report  # noqa: E402

cli.add_command(report)

from ffqueue.cli_control import CONTROL_COMMANDS, reconcile  # noqa: E402

for command in CONTROL_COMMANDS:
    sweep.add_command(command)
cli.add_command(reconcile)

from ffqueue.cli_deploy import flower  # noqa: E402

cli.add_command(flower)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every expected error into one line on stderr."""
    from kombu.exceptions import OperationalError as BrokerError
    from sqlalchemy.exc import OperationalError as DatabaseError

    try:
        cli.main(args=argv, prog_name="ffqueue", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except FFQueueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except DatabaseError as exc:
        from ffqueue.db import unreachable

        click.echo(f"error: {unreachable(exc)}", err=True)
        sys.exit(1)
    except BrokerError as exc:
        from ffqueue.settings import mask_url

        url = mask_url(get_settings().effective_broker_url)
        click.echo(f"error: cannot reach the broker FFQ_BROKER_URL={url}: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
