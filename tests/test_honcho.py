"""The Procfile under honcho: release, then worker + beat + flower, a sweep, a clean stop.

This is the one-machine deployment of docs/deploy.md, against the real Redis and a
fresh PostgreSQL database, in production mode.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import CLEAN_ENV, ffqueue, ffqueue_json
from tests.test_flower import free_port, http_get, started, wait_for

ROOT = Path(__file__).resolve().parents[1]
HONCHO = [sys.executable, "-m", "honcho", "--no-colour", "-f", str(ROOT / "Procfile")]
SWEEP = """
name: honcho-test
mixes: {mixes}
architectures:
  - []
  - [{{type: fc, units: 16}}]
seeds: [0]
mix_indices: [0, 5, 10]
epochs: 2
batch_size: 128
"""


def process_tree(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of ``root``'s descendants, read from /proc."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append((int(entry.name), stat[19]))
    found: set[tuple[int, str]] = set()
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found.add((pid, start))
            todo.append(pid)
    return found


def _stat(pid: int) -> list[str] | None:
    """Fields 3… of /proc/PID/stat (state, ppid, …), or None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return None if fields[0] in "ZX" else fields


def still_running(tree: set[tuple[int, str]]) -> list[int]:
    """The processes of ``tree`` that still run (same pid and start time, not a zombie)."""
    return [pid for pid, start in tree
            if (stat := _stat(pid)) is not None and stat[19] == start]


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_honcho_brings_the_stack_up_and_down(tmp_path, tiny_mixes, redis_url, postgres_url):
    port, auth = free_port(), ("ops", "honcho-test-pw")
    env = {"FFQ_ENV": "production", "FFQ_DATABASE_URL": postgres_url,
           "FFQ_BROKER_URL": redis_url, "FFQ_HOME": str(tmp_path / "home"),
           "FFQ_TORCH_THREADS": "1", "FFQ_WORKER_CONCURRENCY": "2",
           "FFQ_ANALYSIS_INTERVAL": "2", "FFQ_FLOWER_PORT": str(port),
           "FFQ_FLOWER_BASIC_AUTH": ":".join(auth),
           # The Procfile says `ffqueue …`: the one installed beside this Python.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    app_root = ["-d", str(tmp_path)]  # the processes' directory; no stray .env is read

    # 1. release: migrate and exit (honcho stops everything when one process exits).
    release = subprocess.run([*HONCHO, *app_root, "start", "release"], env={**CLEAN_ENV, **env},
                             capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stdout + release.stderr
    assert "is at revision" in release.stdout

    # 2. the long-running types.
    with started([*HONCHO, *app_root, "start", "worker", "beat", "flower"], env=env,
                 logs=tmp_path / "logs") as (stack,):
        wait_for(lambda: http_get(port, "/healthcheck", auth=None) == (200, b"OK"),
                 "Flower to listen", alive=[stack])
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(SWEEP.format(mixes=tiny_mixes))
        sweep_id = ffqueue("sweep", "submit", "--file", str(sweep),
                           env=env).stdout.strip().splitlines()[-1]
        engine = create_engine(postgres_url)

        def query(sql: str) -> tuple[int, ...]:
            with engine.connect() as connection:
                return tuple(connection.execute(text(sql), {"s": int(sweep_id)}).one())

        # The database is the source of truth: wait there, not on the broker.
        ended = "SELECT count(*) FROM runs WHERE sweep_id = :s AND status IN ('done', 'failed')"
        wait_for(lambda: query(ended) == (6,), "the 6 runs to finish", alive=[stack])
        # beat → analysis queue → worker: the decay fits appear without anyone asking.
        fits = ("SELECT count(*), coalesce(sum(n_mixes), 0) FROM decay_results "
                "WHERE sweep_id = :s")
        wait_for(lambda: query(fits) == (2, 6),  # 2 architectures, each on its 3 mixes
                 "beat's analysis to store the decay fits", alive=[stack])
        engine.dispose()
        rows = ffqueue_json("results", sweep_id, env=env)
        assert sorted(r["status"] for r in rows) == ["done"] * 6, rows
        status, body = http_get(port, "/api/workers?refresh=1", auth=auth)
        assert status == 200, body
        assert any(name.startswith("celery@") for name in json.loads(body)), body

        # 3. a clean stop: SIGTERM to honcho alone; it stops its children, and theirs.
        tree = process_tree(stack.pid)
        assert len(tree) >= 6  # three types, each a shell (or exec) and a Python, + pool
        stack.send_signal(signal.SIGTERM)
        stack.wait(timeout=60)
    log = next((tmp_path / "logs").glob("0-*.log")).read_text()
    assert all(f"sending SIGTERM to {name}" in log for name in ("worker", "beat", "flower"))
    wait_for(lambda: not still_running(tree), "every child of honcho to exit", timeout=15)
