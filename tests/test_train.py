"""The training loop on its own: the article's setup, determinism, clear failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffqueue.errors import TrainingError
from ffqueue.sweeps import TrainConfig
from worker.nets import build_model
from worker.train import Split, load_weights, save_weights, train


def two_blobs(n: int = 400, seed: int = 0) -> Split:
    """Ten classes, each a bright square in its own place: trivially learnable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = rng.integers(0, 30, size=(n, 784)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, label * 70:label * 70 + 60] = 255
    cut1, cut2 = int(n * 0.7), int(n * 0.8)
    return Split(x[:cut1], y[:cut1], x[cut1:cut2], y[cut1:cut2], x[cut2:], y[cut2:])


def test_xavier_uniform_init_and_zero_bias():
    torch.manual_seed(0)
    model = build_model([{"type": "fc", "units": 256}])
    linear = model[0]
    bound = math.sqrt(6 / (784 + 256))  # Glorot uniform limit
    assert linear.weight.abs().max() <= bound
    assert linear.weight.abs().max() > 0.9 * bound
    assert torch.all(linear.bias == 0)


def test_learns_a_separable_problem_and_reports_each_epoch():
    seen = []
    result = train([{"type": "fc", "units": 32}], two_blobs(), TrainConfig(epochs=4, batch_size=64),
                   seed=0, on_epoch=seen.append)
    assert [e.epoch for e in seen] == [1, 2, 3, 4] == [e.epoch for e in result.epochs]
    assert result.final is not None and result.final.test_accuracy > 0.9
    assert seen[-1].train_loss < seen[0].train_loss
    assert result.confusion is not None
    assert sum(map(sum, result.confusion)) == 80
    trace = sum(result.confusion[i][i] for i in range(10))
    assert trace / 80 == pytest.approx(result.final.test_accuracy)


def test_same_seed_same_weights_other_seed_other_weights():
    data, config = two_blobs(), TrainConfig(epochs=2, batch_size=50)
    spec = [{"type": "dropout", "p": 0.2}, {"type": "fc", "units": 16}]
    a = train(spec, data, config, seed=3)
    b = train(spec, data, config, seed=3)
    c = train(spec, data, config, seed=4)
    assert a.state_dict is not None and b.state_dict is not None and c.state_dict is not None
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not torch.equal(a.state_dict["1.weight"], c.state_dict["1.weight"])


def test_non_finite_loss_is_a_training_error():
    data = two_blobs()
    inf = np.full(data.x_train.shape, np.inf, dtype=np.float32)
    bad = Split(inf, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
    with pytest.raises(TrainingError, match="loss became nan in epoch 1"):
        train([], bad, TrainConfig(epochs=1), seed=0)


def test_weights_round_trip_with_weights_only(tmp_path):
    result = train([], two_blobs(), TrainConfig(epochs=1), seed=0)
    assert result.state_dict is not None
    save_weights(result.state_dict, tmp_path / "w" / "final.pt")
    loaded = load_weights(tmp_path / "w" / "final.pt")
    assert loaded.keys() == result.state_dict.keys()
    assert torch.equal(loaded["0.weight"], result.state_dict["0.weight"])


def test_bf16_autocast_learns_and_is_deterministic():
    spec = [{"type": "conv", "filters": 4, "kernel": 3}, {"type": "pool", "size": 2},
            {"type": "dropout", "p": 0.25}, {"type": "fc", "units": 16}]
    config = TrainConfig(epochs=4, batch_size=64)
    a = train(spec, two_blobs(), config, seed=2, precision="bf16")
    b = train(spec, two_blobs(), config, seed=2, precision="bf16")
    assert a.final is not None and a.final.test_accuracy > 0.8
    assert a.state_dict is not None and b.state_dict is not None
    assert all(a.state_dict[k].dtype == torch.float32 for k in a.state_dict)  # fp32 master
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_precision_setting_resolves_per_device():
    from ffqueue.errors import ConfigError
    from worker.device import bf16_native, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_native(cpu) else "fp32")
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", cpu)


def test_dropout_draws_from_the_runs_own_stream_not_the_global_one():
    spec = [{"type": "dropout", "p": 0.5}, {"type": "fc", "units": 16}]
    config = TrainConfig(epochs=1, batch_size=50)
    a = train(spec, two_blobs(), config, seed=3)
    torch.manual_seed(12345)  # only the initial weights come from the global RNG,
    b = train(spec, two_blobs(), config, seed=3)  # and train() seeds it itself
    assert a.state_dict is not None and b.state_dict is not None
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
