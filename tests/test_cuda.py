"""The engine on a GPU: training, bf16, resume, fused ≡ separate, and a run through the runner.

Skipped without CUDA. ``FFQ_TEST_DEVICE=cpu`` runs them on the CPU instead, to check
the tests themselves on a machine without a GPU. On a GPU, ``scripts/gpu-check.sh``
runs them with the GPU benchmarks.
"""

from __future__ import annotations

import os

import pytest
import torch

from ffqueue.sweeps import TrainConfig, make_definition
from tests.test_fused import CNN, MLP, assert_same_run
from tests.test_train import two_blobs
from worker.checkpoint import checkpoint_epoch
from worker.device import describe, pick_device, resolve_precision
from worker.fused import Member, train_fused
from worker.train import train

CONFIG = TrainConfig(epochs=3, batch_size=64)


@pytest.fixture
def device() -> torch.device:
    name = os.environ.get("FFQ_TEST_DEVICE", "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return pick_device(name)


def test_the_device_is_used_and_described(device: torch.device) -> None:
    assert pick_device(device.type).type == device.type
    assert describe(device).startswith(device.type)


def test_training_on_the_device_learns_and_returns_cpu_weights(device) -> None:
    data, config = two_blobs(), TrainConfig(epochs=8, batch_size=64)
    result = train(MLP, data, config, seed=0, device=device)
    final = result.final
    assert final is not None and final.test_accuracy > 0.9  # the blobs are easy
    assert result.state_dict is not None
    assert all(v.device.type == "cpu" for v in result.state_dict.values())
    assert sum(map(sum, result.confusion or [])) == data.sizes[2]
    # The same net trained on the CPU ends close by: the device changes rounding only.
    cpu = train(MLP, data, config, seed=0)
    assert cpu.final is not None
    assert final.test_accuracy == pytest.approx(cpu.final.test_accuracy, abs=0.05)


def test_a_cnn_trains_on_the_device(device) -> None:
    result = train(CNN, two_blobs(), TrainConfig(epochs=8, batch_size=64), seed=0, device=device)
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.epochs[-1].test_accuracy > 0.3  # ten classes: chance is 0.1


def test_bf16_autocast_on_the_device(device) -> None:
    precision = resolve_precision("auto", device)
    if precision != "bf16":
        pytest.skip(f"{describe(device)} has no native bf16")
    data = two_blobs()
    fp32 = train(MLP, data, CONFIG, seed=1, device=device, precision="fp32")
    bf16 = train(MLP, data, CONFIG, seed=1, device=device, precision="bf16")
    assert fp32.final is not None and bf16.final is not None
    assert bf16.final.test_accuracy == pytest.approx(fp32.final.test_accuracy, abs=0.05)


def test_resume_on_the_device_ends_where_an_uninterrupted_run_ends(device, tmp_path) -> None:
    data, path = two_blobs(), tmp_path / "checkpoint.pt"

    class Stop(Exception):
        pass

    def stop_at_2(metrics) -> None:
        if metrics.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(CNN, data, CONFIG, seed=2, device=device, checkpoint=path, on_epoch=stop_at_2)
    assert checkpoint_epoch(path) == 1
    resumed = train(CNN, data, CONFIG, seed=2, device=device, checkpoint=path)
    whole = train(CNN, data, CONFIG, seed=2, device=device)
    # GPU kernels may reorder sums between calls: equal within float tolerance.
    assert_same_run(whole, resumed)


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_fused_equals_separate_on_the_device(device, spec) -> None:
    members = [Member(seed, two_blobs(seed=mix)) for seed, mix in [(0, 0), (0, 1), (3, 2)]]
    fused = train_fused(spec, members, CONFIG, device=device)
    for member, result in zip(members, fused, strict=True):
        assert not isinstance(result, Exception)
        separate = train(spec, member.data, CONFIG, seed=member.seed, device=device)
        assert_same_run(separate, result, atol=1e-4)


def test_a_run_through_the_runner_records_its_device(device, settings, tiny_mixes) -> None:
    from ffqueue.db import session_scope
    from ffqueue.models import Run, RunStatus
    from ffqueue.runner import execute_run
    from ffqueue.scheduler import submit

    settings = settings.model_copy(update={"device": str(device), "fuse": "on"})
    definition = make_definition(name="gpu", mixes_dir=tiny_mixes, specs=[MLP], seeds=[0],
                                 mix_indices=[0, 10], train=TrainConfig(epochs=2, batch_size=64))
    with session_scope(settings) as session:
        run_ids = submit(definition, session=session).to_publish
    outcomes = [execute_run(run_id, settings=settings).status for run_id in run_ids]
    assert outcomes == ["done", "skipped"]  # the second was trained fused with the first
    with session_scope(settings) as session:
        runs = [session.get_one(Run, run_id) for run_id in run_ids]
        assert all(r.status == RunStatus.DONE and r.epochs_done == 2 for r in runs)
        assert all((r.device or "").startswith(device.type) for r in runs)
        assert all(r.torch_version == torch.__version__ for r in runs)
