"""Scaling: the same sweep drained by 1 and by 2 worker processes; the speed-up.

    python bench/scaling.py                          # Redis + a fresh PostgreSQL database
    python bench/scaling.py --local                  # SQLite file + folder queue, no servers
    python bench/scaling.py --workers 1,2,4 --mixes 0,2,4,6,8,10 --epochs 5 --out scaling.json

Each configuration gets a fresh database and an empty queue. Its workers are separate
``ffqueue worker`` processes (solo pool, as on separate machines), each with
cores / workers torch threads, started and warmed up (a sweep of 0-epoch runs makes
each import torch) before the sweep is submitted. The time is the makespan: from
submission to the last run's end, read from the database.
The speed-up is T(1 worker) / T(N workers) measured in the same invocation; on a
machine shared with other jobs it is noisy, so compare it only with its own baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER = os.environ.get("FFQ_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("FFQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FFQ_")}


def build_data(root: Path, per_class: int) -> Path:
    """Synthetic doodles and their 11 mixes (reused when already built)."""
    from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles
    from ffqueue.data.mixes import build_mixes

    mixes = root / f"mixes-{per_class}"
    if not (mixes / "mixes.json").exists():
        write_doodles(root / "doodles", per_class=per_class, seed=0)
        build_mixes(root / "doodles", mixes, CONVERGENT, DIVERGENT, per_class=per_class, seed=0)
    return mixes


@contextmanager
def fresh_services(local: bool, home: Path, redis_url: str,
                   server_url: str) -> Iterator[dict[str, str]]:
    """FFQ_* variables for an empty database and an empty queue; dropped afterwards."""
    env = {"FFQ_HOME": str(home)}
    if local:
        yield env
        return
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    name = f"ffq_scaling_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield {**env, "FFQ_DATABASE_URL": url, "FFQ_BROKER_URL": redis_url}
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ffqueue(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "ffqueue", *args], env={**CLEAN_ENV, **env},
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"ffqueue {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def database_url(env: dict[str, str]) -> str:
    return env.get("FFQ_DATABASE_URL") or f"sqlite:///{Path(env['FFQ_HOME']) / 'ffqueue.db'}"


def finished_runs(log: Path) -> int:
    """Runs this worker finished so far, from its log."""
    return sum("ffqueue.train_run[" in line and " succeeded in " in line
               for line in log.read_text().splitlines())


def wait_ready(logs: list[Path], workers: list[subprocess.Popen[Any]], timeout: float) -> None:
    """Until every worker has logged Celery's 'ready.' line."""
    deadline = time.monotonic() + timeout
    while not all(" ready." in log.read_text() for log in logs):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit("a worker did not start:\n" + "\n".join(p.read_text()[-2000:]
                                                                    for p in logs))
        time.sleep(0.2)


def run_configuration(workers: int, args: argparse.Namespace, mixes: Path, scratch: Path
                      ) -> dict[str, Any]:
    """Drain the sweep with ``workers`` processes; its makespan and totals."""
    home = scratch / f"home-{workers}"
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    with fresh_services(args.local, home, args.redis, args.postgres) as env:
        env["FFQ_TORCH_THREADS"] = str(threads)
        ffqueue("db", "upgrade", env=env)
        logs = [scratch / f"worker-{workers}-{i}.log" for i in range(workers)]
        processes = [subprocess.Popen(
            [sys.executable, "-m", "ffqueue", "worker", "--hostname", f"bench{i}@%h",
             "--loglevel", "INFO", "--queues", "train"],
            env={**CLEAN_ENV, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT)
            for i, log in enumerate(logs)]
        try:
            wait_ready(logs, processes, timeout=120)
            # Warm-up: a worker imports torch at its first run (seconds on a busy
            # machine). 0-epoch runs, several per worker, so each process pays that
            # before the clock starts.
            warm = ffqueue("sweep", "submit", "--preset", args.preset, "--mixes", str(mixes),
                           "--mix-indices", "0", "--epochs", "0", "--name", f"warm-up-{workers}",
                           env=env).strip().splitlines()[-1]
            wait_for_sweep(database_url(env), int(warm), args.timeout, processes)
            before = [finished_runs(log) for log in logs]
            submitted = time.time()
            sweep_id = ffqueue("sweep", "submit", "--preset", args.preset, "--mixes", str(mixes),
                               "--mix-indices", args.mixes, "--epochs", str(args.epochs),
                               "--name", f"scaling-{workers}", env=env).strip().splitlines()[-1]
            row = wait_for_sweep(database_url(env), int(sweep_id), args.timeout, processes)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(60)
    makespan = row["last_end"] - submitted
    # Runs each worker finished, from its log: every process must have taken a share.
    shares = [finished_runs(log) - b for log, b in zip(logs, before, strict=True)]
    return {"workers": workers, "torch_threads": threads, "runs": row["runs"],
            "done": row["done"], "makespan_s": round(makespan, 2),
            "train_s": round(row["train_s"], 2), "runs_per_worker": shares}


def wait_for_sweep(url: str, sweep_id: int, timeout: float,
                   processes: list[subprocess.Popen[Any]]) -> dict[str, Any]:
    engine = create_engine(url)
    query = text("SELECT count(*) AS runs, "
                 "sum(CASE WHEN status IN ('done', 'failed', 'cancelled') THEN 1 ELSE 0 END) "
                 "AS ended, sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS done, "
                 "max(finished_at) AS last_end, coalesce(sum(train_seconds), 0) AS train_s "
                 "FROM runs WHERE sweep_id = :s")
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                row = dict(connection.execute(query, {"s": sweep_id}).mappings().one())
            if row["ended"] == row["runs"]:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit(f"the sweep did not finish: {row}")
            time.sleep(0.25)
    finally:
        engine.dispose()
    last_end = row["last_end"]
    if isinstance(last_end, str):  # SQLite returns the text form
        from datetime import datetime

        last_end = datetime.fromisoformat(last_end)
    if last_end.tzinfo is None:
        from datetime import timezone

        last_end = last_end.replace(tzinfo=timezone.utc)
    return {**row, "last_end": last_end.timestamp(), "train_s": float(row["train_s"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare [1,2]")
    parser.add_argument("--preset", default="fc12")
    parser.add_argument("--mixes", default="0,5,10", help="mix indices [0,5,10]")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=500, help="drawings per class [500]")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker "
                        "[cores / workers]")
    parser.add_argument("--local", action="store_true", help="SQLite + folder queue")
    parser.add_argument("--redis", default=REDIS, help="broker [$FFQ_BENCH_REDIS_URL]")
    parser.add_argument("--postgres", default=SERVER, help="server for the throw-away databases")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "ffq-bench",
                        help="where the synthetic mixes are built and kept")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)

    counts = [int(n) for n in args.workers.split(",")]
    mixes = build_data(args.data, args.per_class)
    results = []
    with tempfile.TemporaryDirectory(prefix="ffq-scaling-") as scratch:
        for workers in counts:
            result = run_configuration(workers, args, mixes, Path(scratch))
            results.append(result)
            print(json.dumps(result), flush=True)
    base = results[0]["makespan_s"]
    print(f"\n{'workers':>7} {'threads':>7} {'runs':>5} {'makespan s':>10} {'speed-up':>8}")
    for r in results:
        r["speedup"] = round(base / r["makespan_s"], 2)
        print(f"{r['workers']:>7} {r['torch_threads']:>7} {r['runs']:>5} "
              f"{r['makespan_s']:>10.1f} {r['speedup']:>7.2f}x")
    load = os.getloadavg()
    print(f"cores {os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{'local SQLite + folder queue' if args.local else 'Redis + PostgreSQL'}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "load": load, "args": {
            k: str(v) for k, v in vars(args).items()}}, indent=2))
    return 0 if all(r["done"] == r["runs"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
