"""The embedded worker's process count, its folder-queue settings, and what crosses a fork."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from ffqueue.celery_app import celery_config
from ffqueue.db import get_engine
from ffqueue.embedded import embedded_processes
from ffqueue.settings import available_cores, load_settings, sharing_cores
from tests.test_gpus import fake_smi


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.gpus.shutil.which", lambda _name: None)


def test_one_process_per_core_on_a_cpu(tmp_path: Path, no_gpu: None) -> None:
    cores = available_cores()
    assert embedded_processes(load_settings(home=tmp_path)) == cores
    # FFQ_TORCH_THREADS cores for each process, never fewer than one process.
    assert embedded_processes(load_settings(home=tmp_path, torch_threads=2)) == max(1, cores // 2)
    assert embedded_processes(load_settings(home=tmp_path, torch_threads=cores + 1)) == 1


def test_worker_processes_share_the_cores_unless_told(tmp_path: Path) -> None:
    cores = available_cores()
    settings = load_settings(home=tmp_path)
    assert sharing_cores(settings, 1).torch_threads == cores
    assert sharing_cores(settings, 2).torch_threads == max(1, cores // 2)
    assert sharing_cores(settings, cores + 5).torch_threads == 1
    told = load_settings(home=tmp_path, torch_threads=3)
    assert sharing_cores(told, 2).torch_threads == 3
    assert settings.torch_threads == 0  # a copy: the settings given are left as they are


def test_one_process_on_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert embedded_processes(load_settings(home=tmp_path, device="cuda:1")) == 1
    smi = fake_smi(tmp_path)
    monkeypatch.setattr("worker.gpus.shutil.which", lambda _name: smi)
    assert embedded_processes(load_settings(home=tmp_path)) == 1  # auto, and a GPU is there
    assert embedded_processes(load_settings(home=tmp_path, device="cpu")) == available_cores()


def test_the_folder_queue_keeps_a_message_in_reserve_and_redis_does_not(tmp_path: Path,
                                                                        redis_url: str) -> None:
    folder = celery_config(load_settings(home=tmp_path))
    redis = celery_config(load_settings(home=tmp_path, broker_url=redis_url))
    assert folder["worker_prefetch_multiplier"] == 2
    assert redis["worker_prefetch_multiplier"] == 1
    assert folder["task_routes"]["ffqueue.wake"] == {"queue": "train"}


def _child_pool_state(url: str, conn: multiprocessing.connection.Connection) -> None:
    engine = get_engine(load_settings(database_url=url))
    checked_in = engine.pool.checkedin()  # type: ignore[attr-defined]
    with engine.connect() as connection:  # a connection of its own works
        value = connection.execute(text("SELECT 1")).scalar()
    conn.send((checked_in, value))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_process_does_not_reuse_its_parents_connections(settings) -> None:
    engine = get_engine(settings)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_child_pool_state, args=(settings.effective_database_url, child))
    process.start()
    checked_in, value = parent.recv()
    process.join(30)
    assert process.exitcode == 0
    assert checked_in == 0 and value == 1  # the parent's pooled connection was left behind
    with engine.connect() as connection:  # and still works in the parent
        assert connection.execute(text("SELECT 2")).scalar() == 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_dies_as_it_starts_is_an_error_not_a_hang(settings, monkeypatch) -> None:
    from celery.worker import WorkController

    from ffqueue.embedded import embedded_worker
    from ffqueue.errors import ServiceUnavailable

    def broken_start(_self: WorkController) -> None:
        raise RuntimeError("no broker")

    monkeypatch.setattr(WorkController, "start", broken_start)
    # Building a worker marks this process as one (result.get() then refuses to block);
    # undo that afterwards for the tests that follow.
    monkeypatch.setattr("celery._state._task_join_will_block", False)
    queue = settings.broker_dir / "queue"
    with (pytest.raises(ServiceUnavailable, match="stopped as it started"),
          embedded_worker(settings, processes=1)):
        pytest.fail("the worker never started")
    assert not any(queue.iterdir())  # and no wake-up message was left behind
