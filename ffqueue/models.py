"""ORM models: the tables that hold sweeps, architectures, mixes, runs and results.

Alembic (``migrations/``) is the only authority on the schema; these classes must
match it, and ``tests/test_migrations.py`` checks that they do.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def ended(cls) -> tuple[RunStatus, ...]:
        return (cls.DONE, cls.FAILED, cls.CANCELLED)


class SweepStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class StrEnumType(TypeDecorator[Any]):
    """Stores a ``str`` enum as its plain string value (portable, readable in SQL)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> enum.Enum | None:
        return None if value is None else self.enum_class(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the definition
    status: Mapped[SweepStatus] = mapped_column(
        StrEnumType(SweepStatus), default=SweepStatus.ACTIVE
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # TrainConfig as a dict
    mixes_dir: Mapped[str] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    analyzed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    runs: Mapped[list[Run]] = relationship(back_populates="sweep")


class Architecture(Base):
    __tablename__ = "architectures"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # of the canonical spec JSON
    text: Mapped[str] = mapped_column(String(400))
    spec: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    params: Mapped[int] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer)


class Dataset(Base):
    """One mix: ten classes and their train/validation/test split, named by content hash."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))  # mix_00 … mix_10
    mix_index: Mapped[int] = mapped_column(Integer)  # 0 … 10 divergent classes
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    classes: Mapped[list[str]] = mapped_column(JSON)
    n_train: Mapped[int] = mapped_column(Integer)
    n_val: Mapped[int] = mapped_column(Integer)
    n_test: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)  # directory it was registered from


class Run(Base):
    """One (architecture, mix, seed) of a sweep: the unit of work and of results."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("sweep_id", "architecture_id", "dataset_id", "seed"),
        Index("ix_runs_sweep_status", "sweep_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    seed: Mapped[int] = mapped_column(Integer)
    preset: Mapped[str] = mapped_column(String(40))  # fc12, custom, …
    status: Mapped[RunStatus] = mapped_column(StrEnumType(RunStatus), default=RunStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(200))  # lease holder
    host: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(80))
    torch_version: Mapped[str | None] = mapped_column(String(40))
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)  # fraction in [0, 1]
    test_accuracy: Mapped[float | None] = mapped_column(Float)  # fraction in [0, 1]
    train_seconds: Mapped[float | None] = mapped_column(Float)
    confusion: Mapped[list[list[int]] | None] = mapped_column(JSON)  # rows: true class

    sweep: Mapped[Sweep] = relationship(back_populates="runs")
    architecture: Mapped[Architecture] = relationship()
    dataset: Mapped[Dataset] = relationship()
    epochs: Mapped[list[EpochMetric]] = relationship(
        order_by="EpochMetric.epoch", cascade="all, delete-orphan"
    )


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    train_loss: Mapped[float] = mapped_column(Float)
    val_accuracy: Mapped[float] = mapped_column(Float)
    test_accuracy: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)  # wall time of this epoch


class DecayResult(Base):
    """The linear fit of test accuracy on the divergent fraction, per architecture and seed."""

    __tablename__ = "decay_results"
    __table_args__ = (UniqueConstraint("sweep_id", "architecture_id", "seed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    seed: Mapped[int] = mapped_column(Integer)
    slope: Mapped[float | None] = mapped_column(Float)  # accuracy per unit divergent fraction
    intercept: Mapped[float | None] = mapped_column(Float)
    r2: Mapped[float | None] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    max_accuracy: Mapped[float | None] = mapped_column(Float)
    n_mixes: Mapped[int] = mapped_column(Integer)
    partial: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    architecture: Mapped[Architecture] = relationship()


class ClassResult(Base):
    """One class of a sweep: its convergence measures and empirical accuracy."""

    __tablename__ = "class_results"
    __table_args__ = (UniqueConstraint("sweep_id", "class_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    class_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # convergent | divergent | other
    entropy: Mapped[float | None] = mapped_column(Float)  # of the normalised average image
    pixel_variance: Mapped[float | None] = mapped_column(Float)
    ae_loss: Mapped[float | None] = mapped_column(Float)  # autoencoder L2 loss, if computed
    accuracy: Mapped[float | None] = mapped_column(Float)  # mean per-class test accuracy
    n_runs: Mapped[int] = mapped_column(Integer)  # runs the accuracy averages
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
