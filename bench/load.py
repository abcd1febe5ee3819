"""Queue load: submit a sweep of no-op runs (0 epochs) and drain it with worker processes.

    python bench/load.py --runs 10000 --workers 2

Uses the local Redis and PostgreSQL (a fresh database, dropped afterwards). Reports the
submit time (rows + messages) and the per-run queue overhead: claim, start, result
write and acknowledgement, with no training in between. Every run must end done once.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER = os.environ.get("FFQ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("FFQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


def tiny_mixes(root: Path) -> Path:
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles
    from ffqueue.data.mixes import build_mixes

    write_doodles(root / "doodles", per_class=30, seed=0)
    build_mixes(root / "doodles", root / "mixes", CONVERGENT, DIVERGENT, per_class=30, seed=0)
    return root / "mixes"


def run_load(runs: int, workers: int, *, redis_url: str = REDIS, server_url: str = SERVER,
             timeout: float = 1800) -> dict[str, Any]:
    """Submit ``runs`` no-op runs, drain them with ``workers`` processes, check and time it."""
    import redis

    from ffqueue import db
    from ffqueue.scheduler import message_labels, publish, submit
    from ffqueue.settings import load_settings, use_settings
    from ffqueue.sweeps import TrainConfig, make_definition

    name = f"ffq_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    redis.Redis.from_url(redis_url).flushdb()
    home = Path(tempfile.mkdtemp(prefix="ffq-load-"))
    env = {"FFQ_DATABASE_URL": database_url, "FFQ_BROKER_URL": redis_url,
           "FFQ_HOME": str(home), "FFQ_TORCH_THREADS": "1"}
    settings = load_settings(home=home, database_url=database_url, broker_url=redis_url)
    use_settings(settings)
    children: list[subprocess.Popen[bytes]] = []
    try:
        db.upgrade(settings)
        mixes = tiny_mixes(home)
        seeds = list(range(math.ceil(runs / 11)))
        definition = make_definition(name="load", mixes_dir=mixes, specs=[[]], seeds=seeds,
                                     train=TrainConfig(epochs=0))
        started = time.perf_counter()
        with db.session_scope(settings) as session:
            submission = submit(definition, session=session)
            messages = message_labels(submission.to_publish, session=session)
        rows_s = time.perf_counter() - started
        publish(messages, settings=settings)
        submit_s = time.perf_counter() - started
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FFQ_")}
        children = [subprocess.Popen([sys.executable, "-m", "ffqueue", "worker", "-l", "ERROR",
                                      "--hostname", f"load{i}@%h"], env={**clean, **env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for i in range(workers)]
        engine = create_engine(database_url)
        deadline = time.monotonic() + timeout
        with engine.connect() as connection:
            while time.monotonic() < deadline:
                done = connection.execute(text("SELECT count(*) FROM runs WHERE status IN "
                                               "('done', 'failed')")).scalar()
                connection.commit()
                if done == submission.runs:
                    break
                time.sleep(0.5)
            stats = connection.execute(text(
                "SELECT count(*) FILTER (WHERE status = 'done'), max(attempts), "
                "count(DISTINCT (sweep_id, architecture_id, dataset_id, seed)), "
                "extract(epoch FROM max(finished_at) - min(started_at)), avg(train_seconds) "
                "FROM runs")).one()
        engine.dispose()
        done_runs, max_attempts, keys, span, train_s = stats
        return {
            "runs": submission.runs, "workers": workers, "done": done_runs,
            "max_attempts": max_attempts, "distinct_keys": keys,
            "rows_s": rows_s, "submit_s": submit_s, "drain_s": float(span),
            "per_run_ms": 1000 * float(span) * workers / submission.runs,
            "model_ms": 1000 * float(train_s or 0.0),
        }
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=30)
        use_settings(None)
        from ffqueue.db import _engine

        _engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    r = run_load(args.runs, args.workers)
    print("| runs | workers | rows written | submit (rows + messages) | drain | per-run overhead "
          "| of which model build + eval | all done once |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    once = r["done"] == r["runs"] == r["distinct_keys"] and r["max_attempts"] == 1
    print(f"| {r['runs']} | {r['workers']} | {r['rows_s']:.2f} s | {r['submit_s']:.2f} s | "
          f"{r['drain_s']:.1f} s | {r['per_run_ms']:.1f} ms | {r['model_ms']:.1f} ms | "
          f"{'yes' if once else 'NO'} |")


if __name__ == "__main__":
    main()
