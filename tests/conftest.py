"""Fixtures: settings on SQLite and on a fresh PostgreSQL database, Redis, tiny mixes.

The services are real. Their addresses come from FFQ_TEST_POSTGRES_URL (a server
URL; each test gets its own new database on it) and FFQ_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ffqueue.settings import Settings, load_settings, use_settings

POSTGRES_URL = os.environ.get("FFQ_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FFQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TINY_PER_CLASS = 60  # drawings per class in the test mixes: seconds, not minutes


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's FFQ_* variables, nor each other's settings."""
    for key in list(os.environ):
        if key.startswith("FFQ_") and not key.startswith("FFQ_TEST_"):
            monkeypatch.delenv(key)
    use_settings(None)
    yield
    use_settings(None)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    server = make_url(POSTGRES_URL)
    name = f"ffq_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        from ffqueue.db import _engine

        _engine.cache_clear()  # close pooled connections before dropping
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The test Redis database, emptied first."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ffqueue.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on a migrated database (SQLite and PostgreSQL), local folder broker."""
    from ffqueue import db

    s = load_settings(home=tmp_path, database_url=database_url)
    use_settings(s)
    db.upgrade(s)
    return s


@pytest.fixture(scope="session")
def tiny_mixes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eleven small mixes built from the synthetic doodles, shared by the session."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles
    from ffqueue.data.mixes import build_mixes

    root = tmp_path_factory.mktemp("data")
    write_doodles(root / "doodles", per_class=TINY_PER_CLASS, seed=0)
    build_mixes(root / "doodles", root / "mixes", CONVERGENT, DIVERGENT,
                per_class=TINY_PER_CLASS, seed=0)
    return root / "mixes"
