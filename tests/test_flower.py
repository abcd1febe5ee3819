"""Flower: credentials, progress events, and the real monitor against the real Redis.

The helpers at the top (ports, HTTP, process groups) are shared with test_honcho.py.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import pytest

from ffqueue.cli_deploy import autoscale_argv, check_flower, flower_argv, is_loopback
from ffqueue.errors import ConfigError
from ffqueue.settings import load_settings
from tests.helpers import CLEAN_ENV, ffqueue, ffqueue_json

T = TypeVar("T")
USER, PASSWORD = "tester", "flower-test-pw"
FLOWER_SWEEP = """
name: flower-test
mixes: {mixes}
architectures:
  - [{{type: fc, units: 16}}]
seeds: [0]
mix_indices: [0, 10]
epochs: {epochs}
batch_size: 128
"""


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)
             ) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:PORT/PATH, with basic auth unless None."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""  # not listening yet


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 120,
             alive: list[subprocess.Popen[Any]] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        for process in alive or []:
            assert process.poll() is None, f"{process.args} exited {process.returncode}"
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def started(*commands: list[str], env: dict[str, str], logs: Path
            ) -> Iterator[list[subprocess.Popen[Any]]]:
    """Start each command in its own process group; SIGTERM them all on the way out."""
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[Any]] = []
    try:
        for i, command in enumerate(commands):
            log = open(logs / f"{i}-{Path(command[0]).name}.log", "w")  # noqa: SIM115
            processes.append(subprocess.Popen(command, env={**CLEAN_ENV, **env}, stdout=log,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))
        yield processes
    finally:
        for process in processes:
            stop_group(process)


def stop_group(process: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM the process group, then SIGKILL it if it is still there after ``timeout``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return int(process.returncode)


def ffqueue_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ffqueue", *args]


def write_flower_sweep(tmp_path: Path, mixes: Path, epochs: int) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(FLOWER_SWEEP.format(mixes=mixes, epochs=epochs))
    return path


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            total += float(value)
    return total


# ---------------------------------------------------------------- unit: the rules


def redis_settings(**overrides: Any) -> Any:
    return load_settings(broker_url="redis://broker.invalid:6379/0", **overrides)


def test_production_needs_credentials_and_local_stays_on_loopback():
    production = redis_settings(env="production",
                                database_url="postgresql+psycopg://u:p@db/ffq")
    with pytest.raises(ConfigError, match=r"FFQ_FLOWER_BASIC_AUTH .* must be set"):
        check_flower(production, "127.0.0.1")
    check_flower(production.model_copy(update={"flower_basic_auth": "ops:pw"}), "0.0.0.0")
    local = redis_settings()
    check_flower(local, "127.0.0.1")
    check_flower(local, "::1")
    for address in ("0.0.0.0", "10.1.2.3", "flower.example.org"):
        with pytest.raises(ConfigError, match="loopback only"):
            check_flower(local, address)


@pytest.mark.parametrize("auth", ["ops", "ops:", ":pw", "ops:pw,", "ops:pw,x"])
def test_malformed_credentials_are_refused(auth):
    with pytest.raises(ConfigError, match="user:password"):
        check_flower(redis_settings(flower_basic_auth=auth), "127.0.0.1")


def test_flower_needs_a_broker_that_carries_events(tmp_path):
    with pytest.raises(ConfigError, match="Redis or AMQP"):
        check_flower(load_settings(home=tmp_path), "127.0.0.1")


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.53", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org", ""]))


def test_the_password_is_not_on_flowers_command_line():
    argv = flower_argv("127.0.0.1", 5555)
    assert argv[0] == "flower" and "--port=5555" in argv and "--address=127.0.0.1" in argv
    assert not any("auth" in arg for arg in argv)


def test_help_names_the_flower_and_scaling_options():
    assert "FFQ_FLOWER_BASIC_AUTH" in ffqueue("flower", "--help").stdout
    assert "--autoscale MAX[,MIN]" in ffqueue("worker", "--help").stdout


def test_flower_refuses_to_start_in_production_without_credentials():
    env = {"FFQ_ENV": "production", "FFQ_DATABASE_URL": "postgresql+psycopg://u:p@db/ffq",
           "FFQ_BROKER_URL": "redis://broker.invalid:6379/0"}
    result = ffqueue("flower", env=env, check=False, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: FFQ_FLOWER_BASIC_AUTH (user:password) must be set to run Flower in production"]


@pytest.mark.parametrize(("value", "concurrency", "pool", "expected"), [
    (None, 3, None, ([], 3, None)),
    ("4", 1, None, (["--autoscale", "4,1"], 4, "prefork")),
    ("4,2", 1, "prefork", (["--autoscale", "4,2"], 4, "prefork")),
])
def test_autoscale_arguments(value, concurrency, pool, expected):
    assert autoscale_argv(value, concurrency, pool) == expected


@pytest.mark.parametrize(("value", "pool"), [("x", None), ("2,3", None), ("0", None),
                                             ("4,1,1", None), ("4", "solo")])
def test_bad_autoscale_is_a_usage_error(value, pool):
    with pytest.raises(click.BadParameter):
        autoscale_argv(value, 1, pool)


# ---------------------------------------------------------------- unit: progress events


class FakeTask:
    """What progress_reporter needs of a bound Celery task."""

    def __init__(self, events_on: bool, fail: bool = False) -> None:
        self.app = type("App", (), {"conf": type("Conf", (), {
            "worker_send_task_events": events_on})()})()
        self.request = type("Request", (), {"id": "task-1", "hostname": "w@h"})()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def send_event(self, type_: str, **fields: Any) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append((type_, fields))


def test_progress_becomes_a_custom_state_in_celerys_event_state():
    """Flower's task table is celery.events.state.State fed with worker events."""
    from celery.events.state import State

    from ffqueue.tasks import PROGRESS, progress_reporter

    task = FakeTask(events_on=True)
    report = progress_reporter(task)
    assert report is not None
    state = State()
    clock = iter(range(1, 100))

    def feed(type_: str, **fields: Any) -> None:
        state.event({"type": type_, "uuid": "task-1", "hostname": "w@h", "clock": next(clock),
                     "timestamp": time.time(), "local_received": time.time(), **fields})

    feed("task-received", name="ffqueue.train_run", kwargs="{'run_id': 1}")
    feed("task-started")
    for epoch in (1, 2):
        report(epoch, 3)
        type_, fields = task.sent[-1]
        assert fields.pop("retry") is False
        feed(type_, **fields)
        shown = state.tasks["task-1"].as_dict()
        assert shown["state"] == PROGRESS and shown["result"] == f"epoch {epoch} of 3"
    feed("task-succeeded", result="{'status': 'done'}", runtime=1.0)
    assert state.tasks["task-1"].as_dict()["state"] == "SUCCESS"
    assert [t for t, _ in task.sent] == ["task-progress", "task-progress"]


def test_no_progress_events_without_task_events_and_a_lost_event_is_harmless():
    from ffqueue.tasks import progress_reporter

    assert progress_reporter(FakeTask(events_on=False)) is None
    report = progress_reporter(FakeTask(events_on=True, fail=True))
    assert report is not None
    report(1, 2)  # the broker is gone: no exception reaches the training loop


# ---------------------------------------------------------------- integration


@pytest.mark.redis
@pytest.mark.slow
def test_flower_shows_the_worker_and_finished_runs_behind_basic_auth(tmp_path, tiny_mixes,
                                                                      redis_url):
    port = free_port()
    env = {"FFQ_HOME": str(tmp_path / "home"), "FFQ_BROKER_URL": redis_url,
           "FFQ_TORCH_THREADS": "1", "FFQ_FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}",
           "FFQ_FLOWER_PORT": str(port)}
    ffqueue("db", "upgrade", env=env)
    epochs = 3
    with started(ffqueue_command("flower"),
                 ffqueue_command("worker", "--hostname", "flowertest@%h", "--loglevel", "WARNING"),
                 env=env, logs=tmp_path / "logs") as processes:
        wait_for(lambda: http_get(port, "/healthcheck", auth=None) == (200, b"OK"),
                 "Flower to listen", alive=processes)
        # Flower receives the worker's heartbeat events before any run is queued.
        node = f"flowertest@{socket.gethostname()}"
        wait_for(lambda: metric(http_get(port, "/metrics", auth=None)[1].decode(),
                                "flower_worker_online", worker=node),
                 "Flower to see the worker online", alive=processes)
        for path in ("/api/workers", "/api/tasks", "/tasks"):
            assert http_get(port, path, auth=None)[0] == 401, path
            assert http_get(port, path, auth=(USER, "wrong"))[0] == 401, path

        sweep = write_flower_sweep(tmp_path, tiny_mixes, epochs)
        sweep_id = ffqueue("sweep", "submit", "--file", str(sweep),
                           env=env).stdout.strip().splitlines()[-1]
        wait_for(lambda: ffqueue_json("status", sweep_id, env=env)["done"] == 2,
                 "both runs to finish", alive=processes)

        def finished_tasks() -> dict[str, Any] | None:
            import json

            status, body = http_get(port, "/api/tasks?taskname=ffqueue.train_run")
            assert status == 200
            tasks = json.loads(body)
            done = [t for t in tasks.values() if t["state"] == "SUCCESS"]
            return tasks if len(done) == 2 else None

        tasks = wait_for(finished_tasks, "Flower to show both runs succeeded")
        workers = http_get(port, "/api/workers?refresh=1")
        metrics = http_get(port, "/metrics", auth=None)[1].decode()

    labels = sorted(t["kwargs"] for t in tasks.values())
    assert all("'sweep': 'flower-test'" in k and "'architecture': 'fc16'" in k
               and "'seed': 0" in k for k in labels), labels
    assert "'mix': 0" in labels[0] + labels[1] and "'mix': 10" in labels[0] + labels[1]
    assert all(t["worker"].startswith("flowertest@") for t in tasks.values())
    assert all("'status': 'done'" in t["result"] for t in tasks.values())
    assert workers[0] == 200 and b"flowertest@" in workers[1]
    # Every epoch of both runs reached Flower as a task-progress event.
    assert metric(metrics, "flower_events_total", type="task-progress") == 2 * epochs
