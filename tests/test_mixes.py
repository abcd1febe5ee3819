"""QuickDraw numpy_bitmap files and the mixes built from them."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles
from ffqueue.data.mixes import (
    MANIFEST,
    build_mixes,
    list_mixes,
    load_mix,
    mix_classes,
    mix_name,
)
from ffqueue.data.quickdraw import list_categories, open_category, render, save_category
from ffqueue.errors import DataError

PER_CLASS = 50  # 35 train, 5 val, 10 test per class with the default fractions
SOURCE_ROWS = 60


# --- QuickDraw files ---------------------------------------------------------------------


def _bitmaps(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 784), dtype=np.uint8)


def test_list_categories_keeps_spaces_and_sorts(tmp_path: Path) -> None:
    for name in ["wine bottle", "cat", "The Eiffel Tower"]:
        np.save(tmp_path / f"{name}.npy", _bitmaps(2))
    (tmp_path / "notes.txt").write_text("not a category")
    found = list_categories(tmp_path)
    assert list(found) == ["The Eiffel Tower", "cat", "wine bottle"]
    assert found["wine bottle"] == tmp_path / "wine bottle.npy"


def test_list_categories_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_categories(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no \.npy"):
        list_categories(tmp_path)


def test_open_category_memory_maps_a_valid_file(tmp_path: Path) -> None:
    data = _bitmaps(5)
    np.save(tmp_path / "cat.npy", data)  # exactly how Google's files were written
    arr = open_category(tmp_path / "cat.npy")
    np.testing.assert_array_equal(arr, data)
    assert isinstance(arr.base, np.memmap) and not arr.flags.writeable


def _write_bad(path: Path, kind: str) -> None:
    if kind == "int64":
        np.save(path, _bitmaps(3).astype(np.int64))
    elif kind == "width":
        np.save(path, np.zeros((3, 100), dtype=np.uint8))
    elif kind == "1-d":
        np.save(path, np.zeros(784, dtype=np.uint8))
    elif kind == "empty":
        np.save(path, np.zeros((0, 784), dtype=np.uint8))
    elif kind == "truncated":
        np.save(path, _bitmaps(10))
        path.write_bytes(path.read_bytes()[:-1000])
    elif kind == "text":
        path.write_text("this is not a numpy file\n" * 10)
    elif kind == "zero bytes":
        path.write_bytes(b"")
    elif kind == "pickle":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("kind", ["int64", "width", "1-d", "empty", "truncated", "text",
                                  "zero bytes", "pickle"])
def test_open_category_rejects_bad_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "broken file.npy"
    _write_bad(path, kind)
    with pytest.raises(DataError, match=r"broken file\.npy"):
        open_category(path)


def test_open_category_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ghost\.npy.*does not exist"):
        open_category(tmp_path / "ghost.npy")


def test_save_category_round_trip_and_checks(tmp_path: Path) -> None:
    data = _bitmaps(4)
    path = save_category(tmp_path / "sub" / "moon.npy", data)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), data)
    assert [p.name for p in path.parent.iterdir()] == ["moon.npy"]  # no temporary left over
    with pytest.raises(DataError, match="uint8"):
        save_category(tmp_path / "bad.npy", data.astype(np.float32))


def test_render_normalises_the_bounding_box() -> None:
    # A short stroke far from the origin and a big one: both fill the frame, centred.
    tiny = (np.array([[100.0, 50.0], [100.5, 50.0]]), np.zeros(2, dtype=int))
    big = (np.array([[0.0, 0.0], [0.0, 900.0], [10.0, 900.0]]), np.zeros(3, dtype=int))
    out = render([tiny, big]).reshape(2, 28, 28)
    assert out.dtype == np.uint8 and out.max() == 255
    cols = np.flatnonzero(out[0].any(axis=0))
    rows = np.flatnonzero(out[1].any(axis=1))
    for span in (cols, rows):
        assert span[0] <= 3 and span[-1] >= 24
        assert abs((span[0] + span[-1]) / 2 - 13.5) <= 1
    assert not out[0, :10].any() and not out[0, 18:].any()  # a horizontal line stays thin


def test_render_does_not_join_strokes() -> None:
    # Two dots-apart strokes: nothing is drawn between them.
    pts = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    img = render([(pts, np.array([0, 0, 1, 1]))]).reshape(28, 28)
    assert not img[:, 8:20].any()


# --- mixes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doodles")
    write_doodles(path, per_class=SOURCE_ROWS, seed=0)
    return path


@pytest.fixture(scope="module")
def built(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixes")
    build_mixes(source, out, CONVERGENT, DIVERGENT, per_class=PER_CLASS, seed=0)
    return out


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_mix_names_and_classes() -> None:
    assert mix_name(0) == "mix_00" and mix_name(10) == "mix_10"
    with pytest.raises(DataError):
        mix_name(11)
    assert mix_classes(CONVERGENT, DIVERGENT, 0) == CONVERGENT
    assert mix_classes(CONVERGENT, DIVERGENT, 10) == DIVERGENT
    assert mix_classes(CONVERGENT, DIVERGENT, 3) == CONVERGENT[:7] + DIVERGENT[:3]


def test_manifest_lists_eleven_mixes(built: Path) -> None:
    infos = list_mixes(built)
    assert [m.name for m in infos] == [f"mix_{k:02d}" for k in range(11)]
    for k, info in enumerate(infos):
        assert info.index == k
        assert info.classes == CONVERGENT[:10 - k] + DIVERGENT[:k]
        assert (info.n_train, info.n_val, info.n_test) == (350, 50, 100)
        assert info.path == built / f"mix_{k:02d}.npz" and info.path.is_file()
        assert len(info.content_hash) == 64
    assert len({m.content_hash for m in infos}) == 11
    params = json.loads((built / MANIFEST).read_text())["params"]
    assert params["per_class"] == PER_CLASS and params["convergent"] == list(CONVERGENT)


def test_load_mix_is_balanced_and_well_formed(built: Path) -> None:
    info = list_mixes(built)[4]
    mix = load_mix(built, 4, expected_hash=info.content_hash)
    assert (mix.name, mix.index, mix.classes) == ("mix_04", 4, info.classes)
    assert mix.content_hash == info.content_hash
    for x, y, per_class in [(mix.x_train, mix.y_train, 35), (mix.x_val, mix.y_val, 5),
                            (mix.x_test, mix.y_test, 10)]:
        assert x.dtype == np.uint8 and x.shape == (10 * per_class, 784)
        assert y.dtype == np.int64 and np.bincount(y, minlength=10).tolist() == [per_class] * 10
    assert len(set(mix.y_train[:20].tolist())) > 1  # shuffled, not sorted by class


def test_splits_are_disjoint_and_classes_shared_across_mixes(built: Path, source: Path) -> None:
    mix0, mix5 = load_mix(built, 0), load_mix(built, 5)
    train, val, test = _rows(mix0.x_train), _rows(mix0.x_val), _rows(mix0.x_test)
    assert len(train) == 350 and not (train & val or train & test or val & test)
    # Every drawing comes from its class's source file.
    circle_src = _rows(open_category(source / "circle.npy"))
    circle = mix0.x_train[mix0.y_train == mix0.classes.index("circle")]
    assert _rows(circle) <= circle_src
    # The same class brings the same drawings, split the same way, into every mix.
    for split in ("train", "val", "test"):
        x0, y0 = getattr(mix0, f"x_{split}"), getattr(mix0, f"y_{split}")
        x5, y5 = getattr(mix5, f"x_{split}"), getattr(mix5, f"y_{split}")
        for name in CONVERGENT[:5]:
            assert _rows(x0[y0 == mix0.classes.index(name)]) == _rows(
                x5[y5 == mix5.classes.index(name)])


def test_rebuild_is_deterministic(built: Path, source: Path, tmp_path: Path) -> None:
    again = build_mixes(source, tmp_path / "again", CONVERGENT, DIVERGENT, PER_CLASS, seed=0)
    assert [m.content_hash for m in again] == [m.content_hash for m in list_mixes(built)]
    a, b = load_mix(built, 7), load_mix(tmp_path / "again", 7)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    other = build_mixes(source, tmp_path / "other", CONVERGENT, DIVERGENT, PER_CLASS, seed=1)
    assert other[7].content_hash != again[7].content_hash


def test_cache_hit_writes_nothing(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixes"
    first = build_mixes(source, out, CONVERGENT, DIVERGENT, PER_CLASS)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    calls: list[tuple[int, int]] = []
    second = build_mixes(source, out, CONVERGENT, DIVERGENT, PER_CLASS,
                         progress=lambda done, total: calls.append((done, total)))
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert calls[-1] == (31, 31) and len(calls) == 31
    # A lost file is rebuilt alone, identical; a corrupt manifest is rewritten.
    (out / "mix_04.npz").unlink()
    (out / MANIFEST).write_text("{not json")
    third = build_mixes(source, out, CONVERGENT, DIVERGENT, PER_CLASS)
    assert third == first
    assert (out / "mix_03.npz").stat().st_mtime_ns == stamps["mix_03.npz"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in out.iterdir())  # readable by workers
    # Other parameters: every mix changes.
    fourth = build_mixes(source, out, CONVERGENT, DIVERGENT, PER_CLASS, test_fraction=0.3)
    assert fourth[0].n_test == 150
    assert not {m.content_hash for m in fourth} & {m.content_hash for m in first}


def test_wrong_expected_hash(built: Path) -> None:
    with pytest.raises(DataError, match="content hash differs"):
        load_mix(built, 2, expected_hash="0" * 64)


def test_tampered_mix_is_detected(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built, tmp_path / "m")
    path = tmp_path / "m" / "mix_02.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"][0, 400] ^= 0xFF  # one pixel changed, stored hash kept
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"mix_02\.npz.*content hash differs"):
        load_mix(tmp_path / "m", 2)


def test_swapped_mix_file_is_detected(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built, tmp_path / "m")
    shutil.copy(tmp_path / "m" / "mix_01.npz", tmp_path / "m" / "mix_00.npz")
    with pytest.raises(DataError, match="content hash differs"):
        load_mix(tmp_path / "m", 0, expected_hash=list_mixes(built)[0].content_hash)
    with pytest.raises(DataError, match="records index 1"):
        load_mix(tmp_path / "m", 0)


def test_corrupt_or_incomplete_mix_files(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built, tmp_path / "m")
    raw = (tmp_path / "m" / "mix_01.npz").read_bytes()
    (tmp_path / "m" / "mix_01.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"mix_01\.npz"):
        load_mix(tmp_path / "m", 1)
    with zipfile.ZipFile(tmp_path / "m" / "mix_03.npz", "w") as z:
        z.writestr("x_train.npy", b"")
    with pytest.raises(DataError, match=r"mix_03\.npz"):
        load_mix(tmp_path / "m", 3)
    (tmp_path / "m" / "mix_05.npz").unlink()
    with pytest.raises(DataError, match="does not exist"):
        load_mix(tmp_path / "m", 5)


def test_list_mixes_needs_a_sound_manifest(built: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no manifest"):
        list_mixes(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2")
    with pytest.raises(DataError, match="corrupt"):
        list_mixes(tmp_path)
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["mixes"][0]["classes"] = ["circle"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="corrupt"):
        list_mixes(tmp_path)
    manifest["format"] = 99
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="format 99"):
        list_mixes(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"convergent": CONVERGENT[:9]}, "exactly 10"),
    ({"divergent": (*DIVERGENT[:9], "circle")}, "distinct"),
    ({"divergent": (*DIVERGENT[:9], "unicorn")}, "unicorn"),
    ({"per_class": SOURCE_ROWS + 1}, r"fewer than per_class"),
    ({"per_class": 0}, "per_class"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "no training"),
    ({"test_fraction": 1.5}, "test_fraction"),
])
def test_build_rejects_bad_requests(source: Path, tmp_path: Path, change: dict[str, object],
                                    message: str) -> None:
    kwargs: dict[str, object] = {"convergent": CONVERGENT, "divergent": DIVERGENT,
                                 "per_class": PER_CLASS, **change}
    with pytest.raises(DataError, match=message):
        build_mixes(source, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
