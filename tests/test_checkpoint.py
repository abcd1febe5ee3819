"""Checkpoints: written after epochs (every epoch, or every FFQ_CHECKPOINT_SECONDS of
training), resumed bitwise on the CPU, ignored when foreign."""

from __future__ import annotations

import pytest
import torch

from ffqueue.sweeps import TrainConfig
from tests.test_train import two_blobs
from worker.checkpoint import (
    checkpoint_epoch,
    checkpoint_path,
    load_checkpoint,
    prune_checkpoint,
    run_key,
)
from worker.train import train

SPEC = [{"type": "dropout", "p": 0.2}, {"type": "fc", "units": 16},
        {"type": "dropout", "p": 0.5}]
CNN = [{"type": "conv", "filters": 4, "kernel": 3}, {"type": "dropout", "p": 0.25},
       {"type": "pool", "size": 2}, {"type": "fc", "units": 8}]
CONFIG = TrainConfig(epochs=4, batch_size=64)


class Stop(Exception):
    pass


def stop_at(epoch: int):
    def on_epoch(metrics):
        if metrics.epoch == epoch:
            raise Stop

    return on_epoch


@pytest.mark.parametrize("spec", [SPEC, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_after_an_interruption_gives_the_same_weights_bitwise(tmp_path, spec, precision):
    data, path = two_blobs(), tmp_path / "checkpoint.pt"
    whole = train(spec, data, CONFIG, seed=5, precision=precision)
    with pytest.raises(Stop):  # dies in epoch 3, after its metrics, before its checkpoint
        train(spec, data, CONFIG, seed=5, precision=precision, checkpoint=path,
              on_epoch=stop_at(3))
    assert checkpoint_epoch(path) == 2
    seen = []
    resumed = train(spec, data, CONFIG, seed=5, precision=precision, checkpoint=path,
                    on_epoch=seen.append)
    assert [m.epoch for m in seen] == [3, 4]  # only the epochs trained now are reported
    assert [e.epoch for e in resumed.epochs] == [1, 2, 3, 4]
    assert resumed.state_dict is not None and whole.state_dict is not None
    for name, value in whole.state_dict.items():
        assert torch.equal(resumed.state_dict[name], value), name
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in whole.epochs]
    assert resumed.confusion == whole.confusion
    # The last epoch writes no checkpoint: its weights are the run's result.
    assert checkpoint_epoch(path) == 3


def test_checkpoints_wait_for_checkpoint_seconds_of_training(tmp_path):
    data = two_blobs()
    with pytest.raises(Stop):  # epochs of milliseconds: no checkpoint before an hour
        train(SPEC, data, CONFIG, seed=5, checkpoint=tmp_path / "hour.pt",
              checkpoint_seconds=3600, on_epoch=stop_at(3))
    assert not (tmp_path / "hour.pt").exists()
    # Any training at all is enough for a nanosecond: a checkpoint after every epoch.
    path = tmp_path / "some.pt"
    with pytest.raises(Stop):
        train(SPEC, data, CONFIG, seed=5, checkpoint=path, checkpoint_seconds=1e-9,
              on_epoch=stop_at(2))
    assert checkpoint_epoch(path) == 1
    resumed = train(SPEC, data, CONFIG, seed=5, checkpoint=path, checkpoint_seconds=3600)
    whole = train(SPEC, data, CONFIG, seed=5)
    assert resumed.state_dict is not None and whole.state_dict is not None
    assert all(torch.equal(resumed.state_dict[k], v) for k, v in whole.state_dict.items())
    assert checkpoint_epoch(path) == 1  # nothing new saved within the hour


def test_a_checkpoint_with_no_epoch_left_trains_nothing(tmp_path):
    path = tmp_path / "c.pt"
    first = train(SPEC, two_blobs(), CONFIG, seed=1, checkpoint=path)
    key = run_key(SPEC, 1, CONFIG.as_dict(), "")
    three = TrainConfig(epochs=3, batch_size=64)
    again = train(SPEC, two_blobs(), three, seed=1, checkpoint=path, key=key,
                  on_epoch=lambda m: pytest.fail("no epoch is left to train"))
    assert [e.epoch for e in again.epochs] == [1, 2, 3]
    assert again.final == first.epochs[2]
    assert again.confusion is not None and sum(map(sum, again.confusion)) == 80


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    path = tmp_path / "c.pt"
    with pytest.raises(Stop):
        train(SPEC, two_blobs(), CONFIG, seed=1, checkpoint=path, on_epoch=stop_at(3))
    other = run_key(SPEC, 2, CONFIG.as_dict(), "")
    assert checkpoint_epoch(path) == 2 and checkpoint_epoch(path, other) == 0
    seen = []
    train(SPEC, two_blobs(), CONFIG, seed=2, checkpoint=path, on_epoch=seen.append)
    assert [m.epoch for m in seen] == [1, 2, 3, 4]  # started over
    state = load_checkpoint(path, other)
    assert state is not None and state["epoch"] == 3


def test_checkpoint_loads_with_weights_only_and_holds_rng_as_tensors(tmp_path):
    path = tmp_path / "c.pt"
    train(SPEC, two_blobs(), TrainConfig(epochs=2, batch_size=64), seed=0, checkpoint=path)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["format"] == 1
    assert all(isinstance(v, torch.Tensor) for v in state["rng"].values())
    assert set(state["model"]) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert set(state["optimizer"][0]) == {"step", "exp_avg", "exp_avg_sq"}


def test_torn_or_missing_checkpoints_count_as_none(tmp_path):
    assert checkpoint_epoch(tmp_path / "missing.pt") == 0
    assert checkpoint_epoch(None) == 0
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"PK\x03\x04 not a whole file")
    assert checkpoint_epoch(torn) == 0
    prune_checkpoint(torn)
    prune_checkpoint(torn)  # twice is fine
    assert not torn.exists()


def test_checkpoint_path_layout(tmp_path):
    assert checkpoint_path(tmp_path, 42) == tmp_path / "runs" / "42" / "checkpoint.pt"


def test_a_redelivered_run_resumes_from_its_checkpoint(settings, tiny_mixes):
    from sqlalchemy import select

    from ffqueue.data.mixes import load_mix
    from ffqueue.db import session_scope
    from ffqueue.errors import RunRetry
    from ffqueue.models import EpochMetric, Run, RunStatus
    from ffqueue.runner import checkpoint_path as run_checkpoint
    from ffqueue.runner import execute_run, weights_path
    from ffqueue.scheduler import submit
    from ffqueue.sweeps import make_definition
    from worker.device import resolve_precision
    from worker.train import load_weights

    settings = settings.model_copy(update={"checkpoint_seconds": 0})  # after every epoch
    config = TrainConfig(epochs=3, batch_size=64)
    definition = make_definition(name="resume", mixes_dir=tiny_mixes, specs=[SPEC], seeds=[4],
                                 mix_indices=[3], train=config)
    with session_scope(settings) as session:
        (run_id,) = submit(definition, session=session).to_publish

    def crash_in_epoch_2(epoch, _total):
        if epoch == 2:  # after epoch 2 is recorded, before its checkpoint is written
            raise RuntimeError("worker died")

    with pytest.raises(RunRetry):
        execute_run(run_id, settings=settings, progress=crash_in_epoch_2)
    assert checkpoint_epoch(run_checkpoint(settings, run_id)) == 1
    seen: list[int] = []
    outcome = execute_run(run_id, settings=settings, progress=lambda e, _t: seen.append(e))
    assert outcome.status == "done" and seen == [2, 3]  # resumed, not started over
    with session_scope(settings) as session:
        run = session.get_one(Run, run_id)
        assert run.status == RunStatus.DONE and run.attempts == 2 and run.epochs_done == 3
        epochs = session.scalars(select(EpochMetric.epoch).where(EpochMetric.run_id == run_id)
                                 .order_by(EpochMetric.epoch)).all()
        assert epochs == [1, 2, 3]
    assert not run_checkpoint(settings, run_id).exists()  # pruned: the final weights stay
    mix = load_mix(tiny_mixes, 3)
    whole = train(SPEC, mix, config, seed=4,
                  precision=resolve_precision(settings.precision, torch.device("cpu")))
    stored = load_weights(weights_path(settings, run_id))
    assert whole.state_dict is not None
    assert all(torch.equal(stored[k], v) for k, v in whole.state_dict.items())


@pytest.mark.parametrize("interval", [0, 3600])
def test_epoch_metrics_reach_the_database_every_checkpoint_seconds(settings, tiny_mixes,
                                                                     interval):
    """Each epoch is stored at once with 0; with an hour, the final write stores them all."""
    from sqlalchemy import select

    from ffqueue.db import session_scope
    from ffqueue.models import EpochMetric
    from ffqueue.runner import execute_run
    from ffqueue.scheduler import submit
    from ffqueue.sweeps import make_definition

    settings = settings.model_copy(update={"checkpoint_seconds": interval})
    definition = make_definition(name="log", mixes_dir=tiny_mixes, specs=[SPEC], seeds=[0],
                                 mix_indices=[0], train=TrainConfig(epochs=3, batch_size=64))
    with session_scope(settings) as session:
        (run_id,) = submit(definition, session=session).to_publish

    def stored() -> list[int]:
        with session_scope(settings) as session:
            return list(session.scalars(select(EpochMetric.epoch)
                                        .where(EpochMetric.run_id == run_id)
                                        .order_by(EpochMetric.epoch)))

    seen: list[list[int]] = []
    outcome = execute_run(run_id, settings=settings, progress=lambda _e, _t: seen.append(stored()))
    assert outcome.status == "done"
    # The last epoch is never written on its own: the result write carries it.
    assert seen == ([[1], [1, 2], [1, 2]] if interval == 0 else [[], [], []])
    assert stored() == [1, 2, 3]
