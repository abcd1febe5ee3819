"""A small cluster for fault-injection tests: private Redis and PostgreSQL servers that a
test may kill and restart, and ``ffqueue worker`` / ``ffqueue beat`` subprocesses."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.helpers import CLEAN_ENV, stop

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class PrivateRedis:
    """A Redis that keeps nothing on disk: a restart loses every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 10, "redis-server to start")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (run as the postgres user), stoppable at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ffq-pg-"))
        shutil.chown(self.dir, "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                 "-U", "postgres")
        self.start()

    def start(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                 str(self.dir / "log"), "-w", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w",
                 "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Processes:
    """``ffqueue`` subprocesses (workers, beat), all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**CLEAN_ENV, **env}
        self.logs = logs
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([sys.executable, "-m", "ffqueue", *args], env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.children[name] = process
        return process

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(name, "worker", "--hostname", f"{name}@%h", "--loglevel", "INFO")

    def stop_all(self) -> None:
        stop(self.children.values())

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def query(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def try_query(url: str, sql: str) -> list[tuple] | None:
    try:
        return query(url, sql)
    except Exception:
        return None


def assert_exactly_once(url: str, runs: int, epochs: int) -> None:
    """Every run done once, one row per key, every epoch recorded exactly once."""
    statuses = dict(query(url, "SELECT status, count(*) FROM runs GROUP BY status"))
    assert statuses == {"done": runs}, statuses
    keys = query(url, "SELECT count(DISTINCT (sweep_id, architecture_id, dataset_id, seed)) "
                      "FROM runs")[0][0]
    assert keys == runs
    per_run = query(url, "SELECT run_id, count(*), min(epoch), max(epoch) FROM epoch_metrics "
                         "GROUP BY run_id")
    assert len(per_run) == runs
    assert all(row[1:] == (epochs, 1, epochs) for row in per_run), per_run
    done = query(url, "SELECT count(*) FROM runs WHERE epochs_done = "
                      f"{epochs} AND test_accuracy IS NOT NULL")[0][0]
    assert done == runs

