"""Settings: defaults, environment, validation errors that name the variable, masking."""

from pathlib import Path

import pytest

from ffqueue.errors import ConfigError
from ffqueue.settings import load_settings, mask_url


def test_local_defaults_live_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FFQ_HOME", str(tmp_path))
    s = load_settings()
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'ffqueue.db'}"
    assert s.uses_filesystem_broker
    assert s.effective_data_dir == tmp_path / "data"
    assert s.effective_artifact_dir == tmp_path / "artifacts"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("FFQ_DATABASE_URL", "postgresql+psycopg://u:pw@db:5432/ffq")
    monkeypatch.setenv("FFQ_BROKER_URL", "redis://:secret@cache:6379/0")
    monkeypatch.setenv("FFQ_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("FFQ_VISIBILITY_TIMEOUT", "7200")
    s = load_settings()
    assert s.effective_database_url.endswith("@db:5432/ffq")
    assert s.effective_data_dir == Path(tmp_path / "d")
    assert s.visibility_timeout == 7200
    masked = s.masked()
    assert "pw" not in masked["database_url"] and "***" in masked["database_url"]
    assert "secret" not in masked["broker_url"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FFQ_DATABASE_URL", "not a url", "FFQ_DATABASE_URL: not a database URL"),
        ("FFQ_DATABASE_URL", "mysql://root@localhost/x", "FFQ_DATABASE_URL: unsupported database"),
        ("FFQ_BROKER_URL", "http://example", "FFQ_BROKER_URL: unsupported broker scheme 'http'"),
        ("FFQ_BROKER_URL", "localhost:6379", "FFQ_BROKER_URL: unsupported broker scheme"),
        ("FFQ_VISIBILITY_TIMEOUT", "soon", "FFQ_VISIBILITY_TIMEOUT"),
        ("FFQ_VISIBILITY_TIMEOUT", "-5", "FFQ_VISIBILITY_TIMEOUT"),
        ("FFQ_DEVICE", "tpu", "FFQ_DEVICE: unknown device 'tpu'"),
        ("FFQ_ENV", "staging", "FFQ_ENV"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_production_refuses_local_defaults(monkeypatch):
    monkeypatch.setenv("FFQ_ENV", "production")
    with pytest.raises(ConfigError, match="FFQ_DATABASE_URL must name a PostgreSQL server"):
        load_settings()
    monkeypatch.setenv("FFQ_DATABASE_URL", "postgresql+psycopg://u@db/ffq")
    with pytest.raises(ConfigError, match="FFQ_BROKER_URL"):
        load_settings()
    monkeypatch.setenv("FFQ_BROKER_URL", "redis://cache:6379/0")
    assert load_settings().env == "production"


def test_mask_url_hides_passwords_only():
    assert mask_url("postgresql+psycopg://me:pw@h/db") == "postgresql+psycopg://me:***@h/db"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert "pw" not in mask_url("redis://:pw@h:6379/0")
