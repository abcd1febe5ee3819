"""Architecture specs: validation, parameter counts (checked against torch), text, presets."""

import pytest

from ffqueue.errors import SpecError
from ffqueue.specs import FC12_HIDDEN, fc12, parse_spec, preset

CNN = [{"type": "conv", "filters": 32, "kernel": 3}, {"type": "pool", "size": 2},
       {"type": "dropout", "p": 0.25}, {"type": "fc", "units": 128}]


def test_perceptron_is_the_empty_spec():
    arch = parse_spec([])
    assert (arch.text, arch.depth, arch.params) == ("perceptron", 1, 784 * 10 + 10)


def test_cnn_shape_inference_and_parameters_by_hand():
    arch = parse_spec(CNN)
    # conv: 3*3*1*32+32 = 320, map 32x26x26 → pool 32x13x13 = 5408 → fc128: 5408*128+128
    expected = 320 + 5408 * 128 + 128 + 128 * 10 + 10
    assert arch.params == expected
    assert arch.depth == 5
    assert arch.text == "conv32k3-pool2-drop0.25-fc128"


def test_parameter_counts_match_torch():
    torch = pytest.importorskip("torch")
    from worker.nets import build_model, count_parameters

    for spec in ([], [{"type": "fc", "units": 64}, {"type": "fc", "units": 32}], CNN,
                 [{"type": "pool", "kind": "avg", "size": 2},
                  {"type": "conv", "filters": 8, "kernel": 5, "stride": 2, "padding": 1}]):
        model = build_model(spec)
        assert count_parameters(model) == parse_spec(spec).params
        assert model(torch.zeros(3, 784)).shape == (3, 10)


def test_hash_is_canonical_and_defaults_are_filled():
    explicit = [{"type": "conv", "filters": 8, "kernel": 3, "stride": 1, "padding": 0}]
    implicit = [{"kernel": 3, "filters": 8, "type": "conv"}]
    assert parse_spec(explicit).hash == parse_spec(implicit).hash
    assert parse_spec(explicit).hash != parse_spec([{"type": "conv", "filters": 8,
                                                     "kernel": 5}]).hash


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "fc"}, "must be a list"),
        ([{"type": "lstm", "units": 3}], "unknown type 'lstm'"),
        ([{"type": "fc"}], "missing 'units'"),
        ([{"type": "fc", "units": 0}], "units must be a positive integer"),
        ([{"type": "fc", "units": 12.5}], "units must be a positive integer"),
        ([{"type": "dropout", "p": 1.0}], "p must be a number in [0, 1)"),
        ([{"type": "pool", "kind": "median", "size": 2}], "kind must be 'max' or 'avg'"),
        ([{"type": "conv", "filters": 4, "kernel": 29}], "layer 0 (conv4k29): input 1x28x28"),
        ([{"type": "pool", "size": 2}] * 5, "layer 4 (pool2): input 1x1x1 collapses"),
        ([{"type": "fc", "units": 8}, {"type": "conv", "filters": 4, "kernel": 3}], "after fc"),
        ([{"type": "fc", "units": 8, "bias": False}], "unknown field(s) bias"),
        (["fc"], "layer 0: expected an object"),
    ],
)
def test_invalid_specs_are_rejected_with_the_layer_named(spec, message):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert message in str(info.value)


def test_fc12_preset_is_the_article_family():
    archs = fc12()
    assert len(archs) == 12
    assert archs[0].text == "perceptron"
    assert all(a.depth < 4 for a in archs)
    widths = {w for hidden in FC12_HIDDEN for w in hidden}
    assert min(widths) == 16 and max(widths) == 1024
    assert len({a.hash for a in archs}) == 12
    assert [a.hash for a in preset("fc12")] == [a.hash for a in archs]


def test_unknown_preset():
    with pytest.raises(SpecError, match="unknown preset 'fc13'"):
        preset("fc13")
