"""Ranking categories by the convergence measures; class lists, presets and their files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ffqueue.data import classes
from ffqueue.data.doodles import CONVERGENT, DIVERGENT
from ffqueue.data.rank import (
    ClassMeasures,
    measure,
    measure_directory,
    pick_extremes,
    rank_rows,
    ranking,
    sample_drawings,
    separation,
    with_ae_losses,
)
from ffqueue.errors import DataError
from ffqueue.measures import normalized_entropy
from tests.helpers import ffqueue


def m(name: str, entropy: float, variance: float, ae: float | None = None) -> ClassMeasures:
    return ClassMeasures(name, 10, entropy, variance, ae)


MEASURES = [m("a", 1.0, 0.5, 0.1), m("b", 2.0, 0.4, 0.3), m("c", 3.0, 0.45, 0.2),
            m("d", 4.0, 0.1, 0.4)]


def test_ranking_orients_every_measure_towards_divergence() -> None:
    assert ranking(MEASURES, "entropy") == ["a", "b", "c", "d"]  # low entropy first
    assert ranking(MEASURES, "pixel_variance") == ["a", "c", "b", "d"]  # high variance first
    assert ranking(MEASURES, "ae_loss") == ["a", "c", "b", "d"]  # low loss first
    assert ranking([m("x", 1.0, 0.1)], "ae_loss") == []  # not computed: left out
    with pytest.raises(DataError, match="unknown measure"):
        ranking(MEASURES, "beauty")


def test_separation_is_the_auc_of_each_measure() -> None:
    # entropy: divergent c, d outscore convergent a, b in all 4 pairs; variance: c (0.45)
    # looks more convergent than b (0.4): 3 of 4 pairs; ae: c (0.2) below b (0.3): 3 of 4.
    assert separation(MEASURES, ["a", "b"], ["c", "d"]) == {
        "entropy": 1.0, "pixel_variance": 0.75, "ae_loss": 0.75}
    without_ae = [m(x.category, x.entropy, x.pixel_variance) for x in MEASURES]
    assert separation(without_ae, ["a", "b"], ["c", "d"])["ae_loss"] is None
    with pytest.raises(DataError, match="no measures for listed classes"):
        separation(MEASURES, ["a", "zzz"], ["c", "d"])


def test_pick_extremes_and_rows() -> None:
    assert pick_extremes(MEASURES, n=2) == (("a", "b"), ("d", "c"))  # most divergent first
    with pytest.raises(DataError, match="at least 10 categories"):
        pick_extremes(MEASURES, n=5)
    rows = rank_rows(MEASURES, ["a"], ["d"])
    assert [r["category"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1] == {"category": "b", "drawings": 10, "entropy": 2.0, "pixel_variance": 0.4,
                       "ae_loss": 0.3, "rank_entropy": 2, "rank_pixel_variance": 3,
                       "rank_ae_loss": 3, "set": None}
    assert rows[0]["set"] == "convergent" and rows[3]["set"] == "divergent"
    filled = with_ae_losses([m("a", 1, 1), m("b", 2, 2)], {"b": 0.5})
    assert [x.ae_loss for x in filled] == [None, 0.5]


def test_sample_drawings_is_a_seeded_subset() -> None:
    data = np.arange(100 * 784, dtype=np.int64).reshape(100, 784).astype(np.uint8)
    data[:, 0] = np.arange(100)  # a row id
    a = sample_drawings(data, 10, seed=0, name="cat")
    assert a.shape == (10, 784) and len(set(a[:, 0])) == 10
    assert list(a[:, 0]) == sorted(a[:, 0])  # read front to back
    np.testing.assert_array_equal(a, sample_drawings(data, 10, seed=0, name="cat"))
    assert not np.array_equal(a, sample_drawings(data, 10, seed=1, name="cat"))
    np.testing.assert_array_equal(sample_drawings(data, 500, 0, "cat"), data)  # all of them
    with pytest.raises(DataError):
        sample_drawings(data, 0, 0, "cat")


def test_measure_uses_the_average_image() -> None:
    line = np.zeros((28, 28), dtype=np.uint8)
    line[14, 4:24] = 255
    x = np.repeat(line.reshape(1, 784), 3, axis=0)
    got = measure("line", x)
    assert got.drawings == 3 and got.entropy == normalized_entropy(line.astype(float))
    assert got.pixel_variance == pytest.approx(np.var(line / 255.0))


def _designed(kind: str, k: int) -> np.ndarray:
    """An image whose normalised grey-level histogram (and so entropy) we choose."""
    if kind == "sharp":  # ink on k + 1 <= 392 pixels, the rest 0: at most 1 bit
        img = np.zeros(784)
        img[: k + 1] = 255
    elif kind == "blur":  # a smooth ramp over all 784 pixels: nearly 8 bits
        img = np.linspace(0, 255, 784) * (1 - 0.001 * k)
    else:  # 4 to 63 evenly used grey levels: 2 to 6 bits
        levels = 4 + k % 60
        img = (np.arange(784) % levels) * (255 // levels) + 1
    return np.rint(img).astype(np.uint8)


def _kind(i: int) -> str:
    return "sharp" if i % 34 == 0 and i < 340 else "blur" if i % 34 == 17 else "middle"


@pytest.fixture(scope="module")
def many_categories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """345 category files named like QuickDraw's, 10 clearly sharp and 10 clearly blurry."""
    root = tmp_path_factory.mktemp("qd345")
    names = classes.QUICKDRAW_CATEGORIES
    for i, name in enumerate(names):
        img = _designed(_kind(i), i)
        np.save(root / f"{name}.npy", np.repeat(img.reshape(1, 784), 3, axis=0))
    return root


def test_345_categories_rank_and_auto_picks_ten_and_ten(many_categories: Path,
                                                        tmp_path: Path) -> None:
    names = classes.QUICKDRAW_CATEGORIES
    sharp = {n for i, n in enumerate(names) if _kind(i) == "sharp"}
    blurry = {n for i, n in enumerate(names) if _kind(i) == "blur"}
    assert len(sharp) == len(blurry) == 10
    measures = measure_directory(many_categories, sample=2)
    assert len(measures) == 345 and all(x.drawings == 2 for x in measures)
    conv, div = pick_extremes(measures)
    assert set(conv) == sharp and set(div) == blurry

    lists = tmp_path / "lists.json"
    result = ffqueue("data", "rank", "--from", str(many_categories), "--auto", "--sample", "2",
                     "--format", "json", "--out", str(lists))
    rows = json.loads(result.stdout)
    assert len(rows) == 345
    assert {"category", "entropy", "pixel_variance", "ae_loss"} <= set(rows[0])
    assert all(r["ae_loss"] is None for r in rows)
    assert {r["category"] for r in rows if r["set"] == "convergent"} == sharp
    assert {r["category"] for r in rows if r["set"] == "divergent"} == blurry
    assert [r["category"] for r in rows[:10]] == list(conv)
    assert "entropy 1.000" in result.stderr
    assert classes.read_class_lists(lists) == (conv, div)
    assert "wine bottle" in {r["category"] for r in rows}  # names with spaces survive


def test_presets_name_real_categories() -> None:
    assert len(classes.QUICKDRAW_CATEGORIES) == len(set(classes.QUICKDRAW_CATEGORIES)) == 345
    conv, div = classes.preset("quickdraw")
    assert len(conv) == len(div) == 10 and not set(conv) & set(div)
    assert set(conv) | set(div) <= set(classes.QUICKDRAW_CATEGORIES)
    assert classes.preset("doodles") == (CONVERGENT, DIVERGENT)
    assert classes.detect_preset([*CONVERGENT, *DIVERGENT, "extra"]) == "doodles"
    assert classes.detect_preset(classes.QUICKDRAW_CATEGORIES) == "quickdraw"
    assert classes.detect_preset(CONVERGENT) is None
    with pytest.raises(DataError, match="unknown class preset"):
        classes.preset("imagenet")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_class_list_files_round_trip(tmp_path: Path, suffix: str) -> None:
    path = classes.write_class_lists(tmp_path / f"lists{suffix}", CONVERGENT, DIVERGENT)
    assert classes.read_class_lists(path) == (CONVERGENT, DIVERGENT)


@pytest.mark.parametrize("text, message", [
    ("convergent: [a, b]\ndivergent: [c]\n", "exactly 10 convergent"),
    ("- a\n- b\n", "must map 'convergent' and 'divergent'"),
    ("convergent: a\ndivergent: b\n", "must be lists"),
    ("convergent: [a, b, c, d, e, f, g, h, i, j]\ndivergent: [a, l, m, n, o, p, q, r, s, t]\n",
     "named more than once: a"),
    ("convergent: [unclosed\n", "cannot be read"),
])
def test_bad_class_list_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "lists.yaml").write_text(text)
    with pytest.raises(DataError, match=message):
        classes.read_class_lists(tmp_path / "lists.yaml")
    with pytest.raises(DataError, match="does not exist"):
        classes.read_class_lists(tmp_path / "nope.yaml")
