"""The one settings object, read from ``FFQ_*`` environment variables.

Nothing else in ffqueue reads the environment. The defaults run everything on one
machine with no server: an SQLite file for results and a folder as the Celery
broker, both under ``FFQ_HOME``. Production (``FFQ_ENV=production``) refuses those
local defaults so that a cluster never silently writes to a file on one node.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from kombu.utils.url import maybe_sanitize_url
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ffqueue.errors import ConfigError

BROKER_SCHEMES = {"redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory"}
DATABASE_DRIVERS = {"sqlite", "postgresql"}


class Settings(BaseSettings):
    """Effective configuration. Every field is ``FFQ_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="FFQ_", extra="ignore")

    env: Literal["local", "production"] = "local"
    home: Path = Path("ffqueue-data")  # where the local defaults below live
    database_url: str = ""  # default: sqlite:///$FFQ_HOME/ffqueue.db
    broker_url: str = ""  # default: filesystem:// queue folder under $FFQ_HOME/broker
    data_dir: Path | None = None  # default: $FFQ_HOME/data
    artifact_dir: Path | None = None  # default: $FFQ_HOME/artifacts (checkpoints, weights)
    visibility_timeout: int = Field(6 * 3600, gt=0)  # seconds; above the longest run
    lease_seconds: int = Field(120, gt=0)  # seconds without heartbeat before a run is orphaned
    max_attempts: int = Field(3, ge=1)  # crashes before a run is marked failed
    # seconds of training between a run's checkpoints (and epoch writes); 0: every epoch
    checkpoint_seconds: float = Field(1.0, ge=0)
    analysis_interval: float = Field(60.0, gt=0)  # seconds between beat analyses
    reconcile_interval: float = Field(60.0, gt=0)  # seconds between beat reconciliations
    reconcile_grace: float = Field(60.0, ge=0)  # seconds a run may wait unseen before requeue
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = Field(0, ge=0)  # 0: the cores this process may use
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where native
    fuse: Literal["auto", "on", "off"] = "auto"  # train queued siblings fused (auto: on GPU)
    fuse_max: int = Field(32, ge=1)  # most runs in one fused job
    flower_basic_auth: str = ""  # user:password, required outside local mode
    flower_address: str = "127.0.0.1"  # where `ffqueue flower` listens; loopback by default
    flower_port: int = Field(5555, ge=1, le=65535)
    broker_poll_interval: float = Field(0.1, gt=0)  # seconds; filesystem broker only

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.get_backend_name() not in DATABASE_DRIVERS:
            backend = url.get_backend_name()
            raise ValueError(f"unsupported database {backend!r} (sqlite or postgresql)")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = urlsplit(value).scheme
        if scheme not in BROKER_SCHEMES:
            raise ValueError(f"unsupported broker scheme {scheme!r} (redis, amqp or filesystem)")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        base = value.split(":", 1)[0]
        if base not in {"auto", "cpu", "cuda"}:
            raise ValueError(f"unknown device {value!r} (auto, cpu, cuda or cuda:N)")
        return value

    # Derived values: computed, never stored, so there is one source of truth.

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'ffqueue.db'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.home_dir / "broker"

    @property
    def effective_data_dir(self) -> Path:
        return (self.data_dir or self.home_dir / "data").expanduser().resolve()

    @property
    def effective_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.home_dir / "artifacts").expanduser().resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.effective_broker_url.startswith("filesystem")

    def check_production(self) -> None:
        """Refuse the local-only defaults when ``FFQ_ENV=production``."""
        if self.env != "production":
            return
        if not self.database_url or self.is_sqlite:
            raise ConfigError("FFQ_DATABASE_URL must name a PostgreSQL server in production")
        if not self.broker_url or self.uses_filesystem_broker:
            raise ConfigError("FFQ_BROKER_URL must name a Redis or AMQP server in production")

    def masked(self) -> dict[str, Any]:
        """The effective settings with passwords hidden, for ``ffqueue config`` and logs."""
        return {
            "env": self.env,
            "home": str(self.home_dir),
            "database_url": mask_url(self.effective_database_url),
            "broker_url": mask_url(self.effective_broker_url),
            "broker_dir": str(self.broker_dir) if self.uses_filesystem_broker else None,
            "data_dir": str(self.effective_data_dir),
            "artifact_dir": str(self.effective_artifact_dir),
            "visibility_timeout": self.visibility_timeout,
            "lease_seconds": self.lease_seconds,
            "max_attempts": self.max_attempts,
            "analysis_interval": self.analysis_interval,
            "reconcile_interval": self.reconcile_interval,
            "reconcile_grace": self.reconcile_grace,
            "device": self.device,
            "torch_threads": self.torch_threads,
            "precision": self.precision,
            "fuse": self.fuse,
            "fuse_max": self.fuse_max,
            "flower_basic_auth": _mask_auth(self.flower_basic_auth),
            "flower_address": self.flower_address,
            "flower_port": self.flower_port,
        }


def mask_url(url: str) -> str:
    """``scheme://user:***@host/db`` — the URL with its password replaced."""
    if url.startswith(("sqlite", "postgresql")):
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return "<invalid>"
    return str(maybe_sanitize_url(url))


def _mask_auth(value: str) -> str:
    if not value:
        return ""
    return ",".join(f"{pair.split(':', 1)[0]}:***" for pair in value.split(","))


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, turning validation errors into one line."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"FFQ_{field.upper()}: {message}") from None
    settings.check_production()
    return settings


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def use_settings(settings: Settings | None) -> None:
    """Make ``settings`` the process-wide settings (``ffqueue demo --dir`` and tests);
    None forgets them so that the next ``get_settings()`` reads the environment again."""
    global _current
    _current = settings


def sharing_cores(settings: Settings, processes: int) -> Settings:
    """``settings`` for one of ``processes`` worker processes on this machine: unless
    FFQ_TORCH_THREADS says otherwise, an equal share of the cores (oversubscribing the
    cores with torch threads is several times slower)."""
    if settings.torch_threads:
        return settings
    share = max(1, available_cores() // processes)
    return settings.model_copy(update={"torch_threads": share})


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
