"""Fused training: the same per-run results as separate training, and fused jobs in the queue."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from ffqueue.db import session_scope
from ffqueue.models import Architecture, EpochMetric, Run, RunStatus
from ffqueue.runner import checkpoint_path, execute_run, weights_path
from ffqueue.scheduler import submit
from ffqueue.specs import parse_spec
from ffqueue.sweeps import TrainConfig, make_definition
from tests.test_train import two_blobs
from worker.checkpoint import checkpoint_epoch
from worker.fused import Member, train_fused
from worker.train import Split, train

MLP = [{"type": "dropout", "p": 0.2}, {"type": "fc", "units": 16},
       {"type": "dropout", "p": 0.5}]
CNN = [{"type": "conv", "filters": 4, "kernel": 3, "padding": 1}, {"type": "dropout", "p": 0.25},
       {"type": "pool", "kind": "avg", "size": 2},
       {"type": "conv", "filters": 3, "kernel": 3, "stride": 2}, {"type": "fc", "units": 8}]
STARTS_WITH_DROPOUT = [{"type": "dropout", "p": 0.1}, {"type": "pool", "size": 2},
                       {"type": "conv", "filters": 3, "kernel": 5}]
CONFIG = TrainConfig(epochs=3, batch_size=64)


def assert_same_run(separate, fused, *, atol=1e-5):
    assert separate.state_dict.keys() == fused.state_dict.keys()
    for name, value in separate.state_dict.items():
        torch.testing.assert_close(fused.state_dict[name], value, atol=atol, rtol=1e-4)
    assert [e.epoch for e in fused.epochs] == [e.epoch for e in separate.epochs]
    for a, b in zip(separate.epochs, fused.epochs, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
        assert b.val_accuracy == pytest.approx(a.val_accuracy, abs=0.02)
        assert b.test_accuracy == pytest.approx(a.test_accuracy, abs=0.02)
    assert sum(map(sum, fused.confusion)) == sum(map(sum, separate.confusion))


@pytest.mark.parametrize("spec", [MLP, CNN, STARTS_WITH_DROPOUT], ids=["mlp", "cnn", "drop-first"])
def test_fused_equals_separate_per_run(spec):
    members = [Member(seed, two_blobs(seed=mix)) for seed, mix in [(0, 0), (0, 1), (3, 2)]]
    seen: list[tuple[int, int]] = []
    fused = train_fused(spec, members, CONFIG, on_epoch=lambda i, m: seen.append((i, m.epoch)))
    assert sorted(seen) == [(i, e) for i in range(3) for e in (1, 2, 3)]
    for member, result in zip(members, fused, strict=True):
        assert not isinstance(result, Exception)
        assert_same_run(train(spec, member.data, CONFIG, seed=member.seed), result)
    # Different seeds or data really give different nets (the check above can fail).
    first = fused[0].state_dict  # type: ignore[union-attr]
    second = fused[2].state_dict  # type: ignore[union-attr]
    assert not torch.allclose(first[next(iter(first))], second[next(iter(second))])


def test_mixes_of_different_sizes_are_grouped():
    small = two_blobs(n=200, seed=4)
    members = [Member(1, two_blobs(seed=0)), Member(1, small), Member(2, two_blobs(seed=1))]
    results = train_fused(MLP, members, CONFIG)
    for member, result in zip(members, results, strict=True):
        assert_same_run(train(MLP, member.data, CONFIG, seed=member.seed), result)


def test_a_diverging_member_fails_alone():
    data = two_blobs()
    bad = Split(np.full(data.x_train.shape, np.inf, dtype=np.float32), data.y_train,
                data.x_val, data.y_val, data.x_test, data.y_test)
    good = Split(data.x_train.astype(np.float32) / 255, data.y_train, data.x_val, data.y_val,
                 data.x_test, data.y_test)
    results = train_fused([], [Member(0, good), Member(0, bad)], CONFIG)
    assert isinstance(results[1], Exception) and "loss became nan in epoch 1" in str(results[1])
    assert not isinstance(results[0], Exception)
    assert_same_run(train([], good, CONFIG, seed=0), results[0])


def test_fused_checkpoints_resume_fused_or_separately(tmp_path):
    members = [Member(seed, two_blobs(seed=seed), tmp_path / f"{seed}.pt") for seed in (0, 1)]

    def stop(i, metrics):
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_fused(CNN, members, CONFIG, on_epoch=stop)
    assert [checkpoint_epoch(m.checkpoint) for m in members] == [1, 1]
    # Member 1 resumes on its own, member 0 fused: both equal uninterrupted training.
    alone = train(CNN, members[1].data, CONFIG, seed=1, checkpoint=members[1].checkpoint)
    resumed = train_fused(CNN, members[:1], CONFIG)
    for member, result in zip(members, [resumed[0], alone], strict=True):
        assert not isinstance(result, Exception)
        assert_same_run(train(CNN, member.data, CONFIG, seed=member.seed), result)


def test_execute_run_with_fusion_claims_and_trains_its_siblings(settings, tiny_mixes):
    settings = settings.model_copy(update={"fuse": "on", "fuse_max": 4})
    definition = make_definition(name="fused", mixes_dir=tiny_mixes, specs=[MLP, []],
                                 seeds=[0, 1], mix_indices=[0, 5, 10],
                                 train=TrainConfig(epochs=2, batch_size=64))
    with session_scope(settings) as session:
        submission = submit(definition, session=session)
        mlp_runs = session.scalars(select(Run.id).join(Run.architecture)
                                   .where(Architecture.hash == parse_spec(MLP).hash)
                                   .order_by(Run.id)).all()
    assert len(mlp_runs) == 6
    first = execute_run(mlp_runs[0], settings=settings)
    assert first.status == "done"
    with session_scope(settings) as session:
        statuses = {r.id: r.status for r in session.scalars(select(Run))}
    # fuse_max 4: the first run took three siblings; the others of its kind still wait.
    assert [statuses[i] for i in mlp_runs] == [RunStatus.DONE] * 4 + [RunStatus.QUEUED] * 2
    outcomes = {i: execute_run(i, settings=settings).status for i in submission.to_publish}
    assert all(outcomes[i] == "skipped" for i in mlp_runs[:4])  # their messages exit
    with session_scope(settings) as session:
        runs = session.scalars(select(Run)).all()
        assert all(r.status == RunStatus.DONE and r.attempts == 1 for r in runs)
        assert all(r.epochs_done == 2 and r.device == "cpu" for r in runs)
        assert all(sum(map(sum, r.confusion)) == r.dataset.n_test for r in runs)
        per_run = dict(session.execute(select(EpochMetric.run_id, func.count())
                                       .group_by(EpochMetric.run_id)).all())
        assert per_run == {r.id: 2 for r in runs}
    for run_id in submission.to_publish:
        assert weights_path(settings, run_id).exists()
        assert not checkpoint_path(settings, run_id).exists()  # pruned once stored
