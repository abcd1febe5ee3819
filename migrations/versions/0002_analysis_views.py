"""class results table and the analysis views

Views for people who query with ``psql`` or ``sqlite3``: ``decay_curves`` (one row per
done run, accuracy against the divergent fraction), ``model_decay`` (the decay fit of
each architecture and seed) and ``class_convergence`` (each class's convergence
measures and empirical difficulty). Plain SQL that SQLite and PostgreSQL both read.

A later migration that makes SQLite recreate ``runs``, ``sweeps``, ``architectures``,
``datasets``, ``decay_results`` or ``class_results`` (batch mode: altering or dropping
a column) must drop these views first and create them again afterwards, or SQLite
refuses the rename: call ``drop_views()`` and ``create_views()`` from this module.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "decay_curves": """
        SELECT r.sweep_id, s.name AS sweep, r.preset, r.architecture_id,
               a.text AS architecture, a.params, a.depth, r.seed, d.mix_index,
               d.mix_index / 10.0 AS divergent_fraction, r.test_accuracy, r.val_accuracy,
               r.epochs_done, r.train_seconds, r.id AS run_id
        FROM runs r
        JOIN sweeps s ON s.id = r.sweep_id
        JOIN architectures a ON a.id = r.architecture_id
        JOIN datasets d ON d.id = r.dataset_id
        WHERE r.status = 'done' AND r.test_accuracy IS NOT NULL
    """,
    "model_decay": """
        SELECT dr.sweep_id, s.name AS sweep,
               (SELECT MIN(r.preset) FROM runs r
                WHERE r.sweep_id = dr.sweep_id AND r.architecture_id = dr.architecture_id)
                   AS preset,
               dr.architecture_id, a.text AS architecture, a.params, a.depth, dr.seed,
               dr.slope, dr.intercept, dr.r2, dr.stderr, dr.max_accuracy, dr.n_mixes,
               dr.partial, dr.computed_at
        FROM decay_results dr
        JOIN sweeps s ON s.id = dr.sweep_id
        JOIN architectures a ON a.id = dr.architecture_id
    """,
    "class_convergence": """
        SELECT c.sweep_id, s.name AS sweep, c.class_name, c.kind, c.entropy,
               c.pixel_variance, c.ae_loss, c.accuracy, 1.0 - c.accuracy AS difficulty,
               c.n_runs, c.computed_at
        FROM class_results c
        JOIN sweeps s ON s.id = c.sweep_id
    """,
}


def create_views() -> None:
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select.strip()}")


def drop_views() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    op.create_table(
        "class_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("entropy", sa.Float(), nullable=True),
        sa.Column("pixel_variance", sa.Float(), nullable=True),
        sa.Column("ae_loss", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("n_runs", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_class_results_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_results")),
        sa.UniqueConstraint("sweep_id", "class_name", name=op.f("uq_class_results_sweep_id")),
    )
    create_views()


def downgrade() -> None:
    drop_views()
    op.drop_table("class_results")
