"""Alembic is the only schema authority: head must equal the models, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ffqueue import db
from ffqueue.models import Base


def test_upgrade_empty_database_to_head_matches_models(settings):
    engine = db.get_engine(settings)
    assert db.current_revision(settings) == db.head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert {"sweeps", "architectures", "datasets", "runs", "epoch_metrics",
            "decay_results"} <= tables


def test_upgrade_is_idempotent(settings):
    assert db.upgrade(settings) == db.head_revision()
    assert db.upgrade(settings) == db.head_revision()


def test_downgrade_to_base_and_back(settings):
    from alembic import command

    command.downgrade(db.alembic_config(settings), "base")
    assert db.current_revision(settings) is None
    assert db.upgrade(settings) == db.head_revision()
