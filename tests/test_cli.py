"""The CLI as a user meets it: help, config, JSON shapes, one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ffqueue

COMMANDS = [[], ["demo"], ["sweep"], ["sweep", "submit"], ["sweep", "run"], ["status"],
            ["results"], ["analyze"], ["worker"], ["beat"], ["db"], ["db", "upgrade"],
            ["config"], ["archs"], ["data"], ["data", "synth"], ["data", "mixes"],
            ["data", "show"], ["flower"], ["reconcile"], ["sweep", "pause"], ["sweep", "resume"],
            ["sweep", "cancel"], ["sweep", "retry-failed"], ["report"], ["data", "rank"],
            ["data", "figure"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ffqueue")
def test_every_command_has_help(command):
    result = ffqueue(*command, "--help")
    assert result.stdout.startswith("Usage: ffqueue")


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from ffqueue.cli import cli; "
            "assert 'torch' not in sys.modules and 'celery.worker' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_masks_secrets(tmp_path):
    env = {"FFQ_DATABASE_URL": "postgresql+psycopg://me:hunter2@db.example/ffq",
           "FFQ_BROKER_URL": "redis://:s3cret@cache:6379/0", "FFQ_FLOWER_BASIC_AUTH": "me:pw"}
    shown = ffqueue("config", env=env).stdout + ffqueue("config", "--format", "json",
                                                        env=env).stdout
    for secret in ("hunter2", "s3cret", "me:pw"):
        assert secret not in shown
    assert "db.example" in shown and "cache:6379" in shown


def test_archs_json_has_the_documented_fields():
    rows = json.loads(ffqueue("archs", "--preset", "fc12", "--format", "json").stdout)
    assert len(rows) == 12
    assert set(rows[0]) >= {"architecture", "spec", "params", "depth", "hash"}
    assert rows[0] == {**rows[0], "architecture": "perceptron", "spec": [], "depth": 1,
                       "params": 7850}


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"FFQ_DATABASE_URL": "nonsense"}, ["status"], "FFQ_DATABASE_URL: not a database URL"),
        ({"FFQ_BROKER_URL": "ftp://x"}, ["config"], "FFQ_BROKER_URL: unsupported broker scheme"),
        ({"FFQ_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"}, ["status"],
         "cannot use the database FFQ_DATABASE_URL=postgresql+psycopg://nobody@127.0.0.1:1/x"),
        ({"FFQ_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"}, ["db", "upgrade"],
         "cannot use the database FFQ_DATABASE_URL"),
        ({}, ["sweep", "submit", "--preset", "fc99", "--mixes", "."], "unknown preset 'fc99'"),
        ({}, ["sweep", "submit", "--mixes", "."], "give --preset"),
        ({}, ["sweep", "submit", "--preset", "fc12", "--mixes", ".", "--seeds", "a,b"],
         "expected comma-separated integers"),
        ({}, ["sweep", "submit", "--file", "/nonexistent.yaml"], "does not exist"),
        ({}, ["results", "--format", "xml"], "'xml' is not one of"),
        ({}, ["archs", "--preset", "nope"], "unknown preset 'nope'"),
    ],
)
def test_bad_input_is_one_line_on_stderr(tmp_path, env, args, message):
    result = ffqueue(*args, env={"FFQ_HOME": str(tmp_path), **env}, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith("error: ")


def test_unmigrated_database_says_what_to_do(tmp_path):
    result = ffqueue("sweep", "submit", "--preset", "fc12", "--mixes", str(tmp_path),
                     env={"FFQ_HOME": str(tmp_path)}, check=False)
    assert result.returncode == 1
    assert "run `ffqueue db upgrade` first" in result.stderr


def test_unreachable_broker_is_one_line_and_runs_stay_queued(tmp_path, tiny_mixes):
    env = {"FFQ_HOME": str(tmp_path), "FFQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    ffqueue("db", "upgrade", env=env)
    result = ffqueue("sweep", "submit", "--preset", "fc12", "--mixes", str(tiny_mixes),
                     "--epochs", "1", env=env, check=False, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: cannot reach the broker FFQ_BROKER_URL=redis://127.0.0.1:1/0")
    # The runs were committed before publishing: nothing is lost, all still queued.
    status = json.loads(ffqueue("status", "--format", "json", env=env).stdout)
    assert status["queued"] == status["total"] == 12 * 11
