"""Fault injection with real servers and real worker processes.

Each case ends with every run done exactly once: one row per run key, no duplicate and
no missing epoch metrics. Redis and PostgreSQL here are private servers the test owns,
so it can kill and restart them without disturbing anything else.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import (
    PG_BIN,
    PrivatePostgres,
    PrivateRedis,
    Processes,
    assert_exactly_once,
    query,
    try_query,
    wait_until,
)
from tests.helpers import ffqueue

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None
                       or os.geteuid() != 0 or shutil.which("redis-server") is None,
                       reason="needs root, redis-server and PostgreSQL's initdb"),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    yield server
    server.destroy()


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path, postgres: PrivatePostgres, redis_server: PrivateRedis
            ) -> Iterator[tuple[Processes, dict[str, str]]]:
    database = f"faults_{tmp_path.name[-12:].replace('-', '_').lower()}"
    query(postgres.url.replace("/postgres", "/postgres"), "SELECT 1")
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    env = {
        "FFQ_DATABASE_URL": postgres.url.rsplit("/", 1)[0] + f"/{database}",
        "FFQ_BROKER_URL": redis_server.url,
        "FFQ_HOME": str(tmp_path / "home"),
        "FFQ_TORCH_THREADS": "1",
        "FFQ_LEASE_SECONDS": "2",  # heartbeats every 0.5 s; a dead worker is noticed in 2 s
        "FFQ_RECONCILE_INTERVAL": "1",
        "FFQ_RECONCILE_GRACE": "1",
        "FFQ_ANALYSIS_INTERVAL": "3600",
    }
    ffqueue("db", "upgrade", env=env)
    processes = Processes(env, tmp_path)
    try:
        yield processes, env
    finally:
        processes.stop_all()


def submit(env: dict[str, str], tmp_path: Path, mixes: Path, architectures: str, mixes_used: str,
           epochs: int, batch_size: int) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: faults\nmixes: {mixes}\narchitectures: {architectures}\n"
                     f"mix_indices: {mixes_used}\nepochs: {epochs}\nbatch_size: {batch_size}\n")
    ffqueue("sweep", "submit", "--file", str(sweep), env=env)


def done_count(url: str) -> int:
    rows = try_query(url, "SELECT count(*) FROM runs WHERE status = 'done'")
    return rows[0][0] if rows else -1


def test_worker_killed_mid_run_resumes_elsewhere_from_its_checkpoint(cluster, tmp_path,
                                                                     tiny_mixes):
    processes, env = cluster
    url = env["FFQ_DATABASE_URL"]
    epochs = 14
    processes.env["FFQ_CHECKPOINT_SECONDS"] = "0"  # a checkpoint after every epoch
    submit(env, tmp_path, tiny_mixes, "[[{type: fc, units: 1024}, {type: fc, units: 1024}]]",
           "[0]", epochs=epochs, batch_size=8)
    processes.worker("w1")
    processes.worker("w2")
    processes.start("beat", "beat", "--loglevel", "INFO")

    def halfway() -> bool:
        rows = try_query(url, "SELECT epochs_done, worker FROM runs")
        return bool(rows) and rows[0][0] >= 3

    wait_until(halfway, 120, "the run to reach epoch 3")
    epochs_before, holder = query(url, "SELECT epochs_done, worker FROM runs")[0]
    before = dict(query(url, "SELECT epoch, seconds FROM epoch_metrics"))
    victim = holder.split("@")[0]
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
    processes.children[victim].wait(timeout=10)

    wait_until(lambda: done_count(url) == 1, 180, "the run to finish on the other worker")
    assert_exactly_once(url, runs=1, epochs=epochs)
    attempts, finisher_host = query(url, "SELECT attempts, host FROM runs")[0]
    assert attempts == 2
    after = dict(query(url, "SELECT epoch, seconds FROM epoch_metrics"))
    # Resumed, not restarted: the epochs the killed worker checkpointed are kept as they were.
    kept = [e for e in before if after[e] == before[e]]
    assert kept and min(kept) == 1, (epochs_before, before, after)
    survivor = "w2" if victim == "w1" else "w1"
    assert f"run {1}" in processes.log(survivor) or "train_run" in processes.log(survivor)
    checkpoint_dir = Path(env["FFQ_HOME"]) / "artifacts" / "runs" / "1"
    assert (checkpoint_dir / "final.pt").exists()
    assert not (checkpoint_dir / "checkpoint.pt").exists()  # pruned once finished
    assert finisher_host


def start_small_sweep(processes: Processes, env: dict[str, str], tmp_path: Path,
                      mixes: Path) -> str:
    """Twelve short runs, two workers and a beat; the database URL to watch."""
    submit(env, tmp_path, mixes, "[[], [{type: fc, units: 64}]]", "[0, 2, 4, 6, 8, 10]",
           epochs=3, batch_size=4)
    processes.worker("w1")
    processes.worker("w2")
    processes.start("beat", "beat", "--loglevel", "INFO")
    return env["FFQ_DATABASE_URL"]


def queued_count(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM runs WHERE status = 'queued'")[0][0])


def test_redis_restart_and_flushall_mid_sweep(cluster, tmp_path, tiny_mixes, redis_server):
    import redis

    processes, env = cluster
    url = start_small_sweep(processes, env, tmp_path, tiny_mixes)
    wait_until(lambda: done_count(url) >= 3, 120, "three runs to finish")
    lost = queued_count(url)
    redis_server.stop()  # no persistence: every queued message is gone
    time.sleep(2)
    redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    wait_until(lambda: done_count(url) == 12, 240, "the sweep to finish after losing Redis")
    assert_exactly_once(url, runs=12, epochs=3)
    assert lost > 0  # runs were waiting in Redis when it lost them …
    logs = processes.log("w1") + processes.log("w2")
    assert "reconcile: queued again" in logs  # … and the reconciler published them again


def test_postgres_down_for_seconds_mid_sweep(cluster, tmp_path, tiny_mixes, postgres):
    processes, env = cluster
    url = start_small_sweep(processes, env, tmp_path, tiny_mixes)
    wait_until(lambda: done_count(url) >= 2, 120, "two runs to finish")
    postgres.stop()
    time.sleep(4)
    postgres.start()
    wait_until(lambda: done_count(url) == 12, 240, "the sweep to finish after the outage")
    assert_exactly_once(url, runs=12, epochs=3)
    logs = processes.log("w1") + processes.log("w2")
    assert "cannot use the database" in logs  # the outage was seen, and retried through
    assert all(p.poll() is None for name, p in processes.children.items() if name != "beat")
