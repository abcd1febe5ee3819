"""Engines, sessions and migrations.

Sessions live at the edges: a task or a command opens one ``session_scope()`` (a
transaction) and passes ``session=`` to the data functions it calls.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ffqueue.errors import ConfigError, ServiceUnavailable
from ffqueue.settings import Settings, get_settings, mask_url

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # every engine of this process


def _leave_connections_to_parent() -> None:
    """In a forked child (a prefork pool process): forget the pooled connections it
    inherited, without closing them. Two processes on one connection corrupt each
    other's transactions, and closing a PostgreSQL connection here would end the
    parent's session."""
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_leave_connections_to_parent)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A worker thread and the progress poller share the file: wait for locks
        # instead of failing at once.
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True  # a database restart must not break a long-lived worker
        kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(url, **kwargs)
    _engines.add(engine)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
    # In WAL mode NORMAL survives any process crash; only a power cut may roll back the
    # last commits, which the runs' leases then redo. FULL would fsync every epoch row.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    return _engine(settings.effective_database_url)


def unreachable(exc: BaseException, settings: Settings | None = None) -> ServiceUnavailable:
    """Translate a driver error into one line that names the setting."""
    settings = settings or get_settings()
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = detail[0] if detail else type(exc).__name__
    url = mask_url(settings.effective_database_url)
    return ServiceUnavailable(f"cannot use the database FFQ_DATABASE_URL={url}: {reason}")


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """One transaction: commits on success, rolls back on error."""
    factory = sessionmaker(get_engine(settings), expire_on_commit=False)
    try:
        with factory.begin() as session:
            yield session
    except OperationalError as exc:
        raise unreachable(exc, settings) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise unreachable(exc, settings) from exc
        raise


def alembic_config(settings: Settings | None = None) -> Any:
    """An Alembic config pointing at ``migrations/`` and at the settings' database."""
    from alembic.config import Config

    import migrations

    settings = settings or get_settings()
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = settings.effective_database_url
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> str:
    """Migrate the database to ``revision``; returns the revision it ends at."""
    from alembic import command

    settings = settings or get_settings()
    config = alembic_config(settings)
    try:
        # Our engine, so the SQLite folder is created and the pragmas apply.
        with get_engine(settings).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(settings) or "base"
    except OperationalError as exc:
        raise unreachable(exc, settings) from exc


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(settings: Settings | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with get_engine(settings).connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise unreachable(exc, settings) from exc


def require_schema(settings: Settings | None = None) -> None:
    """Fail with a clear message when the database was never migrated or is behind."""
    current = current_revision(settings)
    if current != head_revision():
        state = "empty" if current is None else f"at revision {current}"
        raise ConfigError(f"the database is {state}; run `ffqueue db upgrade` first")


def table_names(settings: Settings | None = None) -> list[str]:
    return sorted(inspect(get_engine(settings)).get_table_names())
