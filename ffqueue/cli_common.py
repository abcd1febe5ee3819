"""Pieces every CLI module uses: consoles, output formats, option parsing."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

# Piped output is not cut to 80 columns: tables stay whole in files and logs.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

FORMATS = click.Choice(["table", "json"])
LEFT_ALIGNED = {"architecture", "sweep", "status", "preset", "device", "setting", "value"}


def int_list(value: str | None, option: str) -> list[int] | None:
    """Parse ``0,1,2`` or ranges like ``0-9,20``; None when the option was not given."""
    if value is None:
        return None
    numbers: list[int] = []
    try:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            low, dash, high = part.partition("-")
            if dash and low:
                numbers.extend(range(int(low), int(high) + 1))
            else:
                numbers.append(int(part))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers or ranges (0-9), "
                                 f"got {value!r}", param_hint=option) from None
    return numbers


def print_rows(rows: list[dict[str, Any]], fmt: str, columns: list[str], title: str = "") -> None:
    """Print dict rows as a Rich table (``columns``), CSV or a JSON array (every key)."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns,
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
    else:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column, justify="left" if column in LEFT_ALIGNED else "right")
        for row in rows:
            table.add_row(*[cell(row.get(c)) for c in columns])
        out.print(table)


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def progress_bar(*columns: ProgressColumn | str, console: Console | None = None) -> Progress:
    """A progress bar on stderr. On a terminal it stays when done; elsewhere (logs, pipes,
    tests) it leaves nothing behind, so an error stays the one line on stderr."""
    console = console or err
    columns = columns or (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn())
    return Progress(*columns, console=console, transient=not console.is_terminal)
