"""The whole path through Celery: embedded on SQLite, distributed on Redis + PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import CLEAN_ENV, ffqueue, ffqueue_json, stop

SWEEP = """
name: queue-test
mixes: {mixes}
architectures:
  - []
  - [{{type: fc, units: 16}}]
seeds: [0]
mix_indices: [0, 2, 4, 6, 8, 10]
epochs: 2
batch_size: 128
"""


def write_sweep(tmp_path: Path, mixes: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.format(mixes=mixes))
    return path


def assert_every_run_done_once(env: dict[str, str], database_url: str, runs: int) -> None:
    rows = ffqueue_json("results", env=env)
    assert len(rows) == runs
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows), rows
    assert all(r["epochs_done"] == 2 and 0 <= r["test_accuracy"] <= 1 for r in rows)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        epochs = connection.execute(text("SELECT count(*), count(DISTINCT run_id) "
                                         "FROM epoch_metrics")).one()
        keys = connection.execute(text("SELECT count(*) FROM (SELECT DISTINCT sweep_id, "
                                       "architecture_id, dataset_id, seed FROM runs) k")).scalar()
    engine.dispose()
    assert tuple(epochs) == (runs * 2, runs)
    assert keys == runs


def overlapping_runs(database_url: str) -> int:
    """Pairs of runs that were training at the same time."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        spans = connection.execute(text("SELECT started_at, finished_at FROM runs")).all()
    engine.dispose()
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1:]
               if a.started_at < b.finished_at and b.started_at < a.finished_at)


@pytest.mark.parametrize("processes", [1, 2])
def test_embedded_sweep_run_goes_through_celery_on_a_folder_queue(tmp_path, tiny_mixes,
                                                                   processes):
    env = {"FFQ_HOME": str(tmp_path / "home")}
    ffqueue("db", "upgrade", env=env)
    sweep = write_sweep(tmp_path, tiny_mixes)
    result = ffqueue("sweep", "run", "--file", str(sweep), "--processes", str(processes),
                     env=env)
    sweep_id = result.stdout.strip().splitlines()[-1]
    assert sweep_id == "1"
    assert "12 runs" in result.stderr
    database_url = f"sqlite:///{tmp_path / 'home' / 'ffqueue.db'}"
    assert_every_run_done_once(env, database_url, runs=12)
    # One solo process trains one run at a time; a pool of two trains side by side.
    assert (overlapping_runs(database_url) > 0) == (processes > 1)
    # The messages that woke the worker to stop were taken too: the queue is empty.
    assert not list((tmp_path / "home" / "broker" / "queue").iterdir())
    # The same sweep again: nothing new is queued or trained.
    again = ffqueue("sweep", "run", "--file", str(sweep), env=env)
    assert "already submitted" in again.stderr and "0 to queue" in again.stderr
    assert_every_run_done_once(env, database_url, runs=12)


def test_submitting_again_queues_only_runs_without_a_message(tmp_path, tiny_mixes):
    env = {"FFQ_HOME": str(tmp_path / "home")}
    ffqueue("db", "upgrade", env=env)
    sweep = write_sweep(tmp_path, tiny_mixes)
    queue = tmp_path / "home" / "broker" / "queue"
    first = ffqueue("sweep", "submit", "--file", str(sweep), env=env)
    assert "12 to queue" in first.stderr and len(list(queue.iterdir())) == 12
    again = ffqueue("sweep", "submit", "--file", str(sweep), env=env)
    assert "0 to queue, 12 already queued" in again.stderr
    assert len(list(queue.iterdir())) == 12  # no second message for a waiting run
    for message in sorted(queue.iterdir())[:5]:  # the broker loses five messages
        message.unlink()
    third = ffqueue("sweep", "submit", "--file", str(sweep), env=env)
    assert "5 to queue, 7 already queued" in third.stderr
    assert len(list(queue.iterdir())) == 12


@pytest.mark.redis
@pytest.mark.postgres
def test_distributed_workers_on_redis_and_postgres(tmp_path, tiny_mixes, redis_url, postgres_url):
    env = {"FFQ_BROKER_URL": redis_url, "FFQ_DATABASE_URL": postgres_url,
           "FFQ_HOME": str(tmp_path / "home"), "FFQ_TORCH_THREADS": "1"}
    ffqueue("db", "upgrade", env=env)
    sweep_id = ffqueue("sweep", "submit", "--file", str(write_sweep(tmp_path, tiny_mixes)),
                       env=env).stdout.strip().splitlines()[-1]
    workers = [
        subprocess.Popen([sys.executable, "-m", "ffqueue", "worker", "--hostname", f"w{i}@%h",
                          "--loglevel", "WARNING"], env={**CLEAN_ENV, **env},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status = ffqueue_json("status", sweep_id, env=env)
            if status["done"] + status["failed"] == status["total"]:
                break
            assert all(w.poll() is None for w in workers), "a worker died"
            time.sleep(1)
        assert status["done"] == status["total"] == 12, status
    finally:
        stop(workers, timeout=30)
    assert_every_run_done_once(env, postgres_url, runs=12)
    hosts = {r["host"] for r in ffqueue_json("results", sweep_id, env=env)}
    assert hosts == {os.uname().nodename}


@pytest.mark.redis
@pytest.mark.redis
@pytest.mark.postgres
def test_embedded_sweep_run_on_redis_and_postgres(tmp_path, tiny_mixes, redis_url, postgres_url):
    import redis

    env = {"FFQ_BROKER_URL": redis_url, "FFQ_DATABASE_URL": postgres_url,
           "FFQ_HOME": str(tmp_path / "home")}
    ffqueue("db", "upgrade", env=env)
    ffqueue("sweep", "run", "--file", str(write_sweep(tmp_path, tiny_mixes)), "--processes",
            "2", env=env)
    assert_every_run_done_once(env, postgres_url, runs=12)
    assert overlapping_runs(postgres_url) > 0
    client = redis.Redis.from_url(redis_url)
    assert client.llen("train") == 0 and client.hlen("unacked") == 0  # nothing left over


def test_messages_are_json_and_routed_to_their_queues(redis_url):
    import json as jsonlib

    import redis

    code = ("from ffqueue.tasks import analyze, train_run; "
            "train_run.delay(run_id=7, sweep='s', architecture='fc16', mix=3, seed=0); "
            "analyze.delay(5)")
    subprocess.run([sys.executable, "-c", code], env={**CLEAN_ENV, "FFQ_BROKER_URL": redis_url},
                   check=True, timeout=60)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("train") == 1 and client.llen("analysis") == 1
    message = jsonlib.loads(client.lindex("train", 0))
    assert message["content-type"] == "application/json"
    assert message["headers"]["task"] == "ffqueue.train_run"
    from ffqueue.celery_app import celery_config
    from ffqueue.settings import load_settings

    config = celery_config(load_settings(broker_url=redis_url))
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
