"""The cnn100 preset: 100 valid CNNs of depth < 7, the same for the same seed."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ffqueue.specs import (
    CNN_MAX_MACS,
    CNN_MAX_PARAMS,
    CNN_SPACE,
    cnn100,
    parse_spec,
    preset,
    sample_cnns,
)
from tests.helpers import ffqueue


def test_cnn100_is_100_distinct_valid_cnns_of_depth_below_7():
    archs = cnn100()
    assert len(archs) == 100 == len({a.hash for a in archs})
    for arch in archs:
        assert 2 <= arch.depth < 7
        assert parse_spec(arch.layers).hash == arch.hash  # valid: shape inference passes
        assert any(layer["type"] == "conv" for layer in arch.spec)
        assert arch.params <= CNN_MAX_PARAMS and arch.macs <= CNN_MAX_MACS
        assert len(arch.glyph()) == arch.depth


def test_cnn100_values_come_from_the_documented_space():
    for arch in cnn100():
        seen_fc = False
        for layer in arch.spec:
            kind = layer["type"]
            if kind == "conv":
                assert not seen_fc
                assert layer["filters"] in CNN_SPACE["filters"]
                assert layer["kernel"] in CNN_SPACE["kernel"]
                assert layer["stride"] in CNN_SPACE["stride"]
                assert layer["padding"] in (0, layer["kernel"] // 2)
            elif kind == "pool":
                assert not seen_fc
                assert (layer["kind"], layer["size"]) in {
                    (k, s) for k in CNN_SPACE["pool_kind"] for s in CNN_SPACE["pool_size"]}
            elif kind == "dropout":
                assert layer["p"] in CNN_SPACE["dropout"]
            else:
                seen_fc = True
                assert layer["units"] in CNN_SPACE["units"]


def test_cnn100_has_the_articles_variety():
    archs = cnn100()
    first = Counter(a.spec[0]["type"] for a in archs)
    assert first["conv"] >= 50 and first["pool"] >= 5 and first["dropout"] >= 5
    assert set(Counter(a.depth for a in archs)) == {2, 3, 4, 5, 6}
    kinds = {layer["type"] for a in archs for layer in a.spec}
    assert kinds == {"conv", "pool", "dropout", "fc"}


def test_same_seed_same_nets_other_seed_other_nets():
    assert [a.hash for a in sample_cnns(100, seed=0)] == [a.hash for a in cnn100()]
    assert [a.hash for a in sample_cnns(20, seed=7)] == [a.hash for a in sample_cnns(20, seed=7)]
    assert {a.hash for a in sample_cnns(20, seed=7)} != {a.hash for a in sample_cnns(20, seed=8)}
    assert [a.hash for a in preset("cnn100")] == [a.hash for a in cnn100()]


def test_cnn100_first_nets_are_pinned():
    """The preset must not drift between versions: sweeps refer to it by name."""
    assert [a.text for a in cnn100()[:3]] == [
        "avgpool2-conv64k7p3-fc128-fc64",
        "conv32k3-conv32k7s2-drop0.25-conv64k7s2-fc128",
        "conv64k5",
    ]


def test_archs_command_lists_cnn100_as_json():
    result = ffqueue("archs", "--preset", "cnn100", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 100
    assert set(rows[0]) >= {"preset", "architecture", "spec", "params", "depth", "hash"}
    assert {r["hash"] for r in rows} == {a.hash for a in cnn100()}


@pytest.mark.parametrize("seed", [0, 1])
def test_every_sampled_net_builds_and_runs_in_torch(seed):
    torch = pytest.importorskip("torch")
    from worker.nets import build_model, count_parameters

    for arch in sample_cnns(10, seed=seed):
        model = build_model(arch.layers)
        assert count_parameters(model) == arch.params
        assert model(torch.zeros(2, 784)).shape == (2, 10)
