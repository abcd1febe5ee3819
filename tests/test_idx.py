"""MNIST idx files and the Forma Fluens mix directories: reading, writing, corrupt variants.

The test files are written here byte by byte from the format's definition (big-endian header:
two zero bytes, type 0x08, the number of dimensions, each dimension as uint32; then the data),
not by the module under test, so a reader that merely agrees with its own writer fails.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from ffqueue.data import idx
from ffqueue.data.doodles import CONVERGENT, DIVERGENT
from ffqueue.data.mixes import build_mixes, list_mixes, load_mix
from ffqueue.errors import DataError

ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def idx_bytes(a: np.ndarray, type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write(path: Path, a: np.ndarray, gz: bool) -> None:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)


def forma_fluens_mix(mix_dir: Path, n_train: int = 100, n_test: int = 20, seed: int = 0,
                     gz: bool = True) -> dict[str, np.ndarray]:
    """One conv_div_mix_NN directory exactly as the article's download has it (no val)."""
    rng = np.random.default_rng(seed)
    mix_dir.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)[rng.permutation(n)]
        write(mix_dir / f"{prefix}-images-idx3-ubyte{suffix}", x, gz)
        write(mix_dir / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz)
        out[prefix] = x.reshape(n, 784), y.astype(np.int64)
    return {"x_train": out["train"][0], "y_train": out["train"][1], "x_test": out["t10k"][0],
            "y_test": out["t10k"][1]}


@pytest.fixture
def download(tmp_path: Path) -> Path:
    """A Forma Fluens download with three of the eleven mixes, gzipped and plain."""
    root = tmp_path / "quickdraw_mix_dataset"
    forma_fluens_mix(root / "conv_div_mix_00", seed=0, gz=True)
    forma_fluens_mix(root / "conv_div_mix_05", seed=5, gz=False)
    forma_fluens_mix(root / "conv_div_mix_10", seed=10, gz=True)
    (root / "README.txt").write_text("not a mix")
    return root


# --- single files ------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_reads_images_and_labels(tmp_path: Path, gz: bool) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    y = np.array([0, 9, 3, 3, 1, 0, 5], dtype=np.uint8)
    write(tmp_path / "i", x, gz)
    write(tmp_path / "l", y, gz)
    images, labels = idx.read_images(tmp_path / "i"), idx.read_labels(tmp_path / "l")
    assert images.dtype == np.uint8 and images.shape == (7, 784) and images.flags.writeable
    np.testing.assert_array_equal(images, x.reshape(7, 784))
    assert labels.dtype == np.int64 and labels.tolist() == y.tolist()


def test_encode_matches_the_format(tmp_path: Path) -> None:
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert idx.encode_idx(a) == idx_bytes(a)
    assert idx.encode_idx(a)[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x08\x00" + b[2:], "bad magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], r"float32 \(type 0x0d\)"),
    (lambda b: b[:3] + b"\x02" + b[4:], "2 dimensions, expected 3"),
    (lambda b: b[:-100], "truncated"),
    (lambda b: b + b"\x00" * 5, "longer than its header"),
    (lambda b: b[:10], "truncated inside its header"),
    (lambda b: b[:2], "too short"),
])
def test_corrupt_image_files(tmp_path: Path, gz: bool, damage: object, message: str) -> None:
    raw = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    data = damage(raw)  # type: ignore[operator]
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=f"bad-images-idx3-ubyte.*{message}"):
        idx.read_images(path)


def test_wrong_image_size_broken_gzip_and_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "small", np.zeros((2, 8, 8), dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match=r"small holds 8x8 images, expected 28x28"):
        idx.read_images(tmp_path / "small")
    whole = gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.gz .*gzip"):
        idx.read_images(tmp_path / "cut.gz")
    with pytest.raises(DataError, match=r"ghost.*does not exist"):
        idx.read_images(tmp_path / "ghost")


def test_label_out_of_range(tmp_path: Path) -> None:
    write(tmp_path / "labels", np.array([1, 2, 10, 3], dtype=np.uint8), gz=True)
    with pytest.raises(DataError, match=r"labels: label 10 at position 2 is out of range 0\.\.9"):
        idx.read_labels(tmp_path / "labels")


# --- mix directories ---------------------------------------------------------------------


def test_forma_fluens_download_is_listed_and_loaded(download: Path) -> None:
    infos = list_mixes(download)
    assert [m.index for m in infos] == [0, 5, 10]
    assert [m.name for m in infos] == ["mix_00", "mix_05", "mix_10"]
    info = infos[1]
    assert info.classes == tuple(f"class_{i}" for i in range(10))
    assert info.path == download / "conv_div_mix_05"
    # 10 training drawings per label, of which the first is carved off for validation.
    assert (info.n_train, info.n_val, info.n_test) == (90, 10, 20)
    mix = load_mix(download, 5, expected_hash=info.content_hash)
    expected = forma_fluens_mix(download.parent / "again", seed=5, gz=False)
    np.testing.assert_array_equal(mix.x_test, expected["x_test"])
    np.testing.assert_array_equal(mix.y_test, expected["y_test"])
    assert mix.y_train.dtype == np.int64 and mix.x_train.dtype == np.uint8
    with pytest.raises(DataError, match="content hash differs"):
        load_mix(download, 0, expected_hash=info.content_hash)
    with pytest.raises(DataError, match=r"conv_div_mix_03 does not exist"):
        load_mix(download, 3)


def test_validation_is_carved_stratified_from_the_front_of_train(tmp_path: Path) -> None:
    expected = forma_fluens_mix(tmp_path / "conv_div_mix_02", n_train=200, seed=2)
    mix = load_mix(tmp_path, 2)
    assert len(mix.y_val) == 20 and np.bincount(mix.y_val, minlength=10).tolist() == [2] * 10
    # Of each label, the first two training drawings in file order are validation.
    y = expected["y_train"]
    firsts = np.sort(np.concatenate([np.flatnonzero(y == c)[:2] for c in range(10)]))
    np.testing.assert_array_equal(mix.x_val, expected["x_train"][firsts])
    rest = np.setdiff1d(np.arange(200), firsts)
    np.testing.assert_array_equal(mix.x_train, expected["x_train"][rest])
    assert load_mix(tmp_path, 2).content_hash == mix.content_hash  # deterministic


def test_class_names_file(download: Path) -> None:
    names = [f"thing {i}" for i in range(10)]
    (download / "conv_div_mix_00" / "classes.txt").write_text("\n".join(names) + "\n")
    assert list_mixes(download)[0].classes == tuple(names)
    (download / "conv_div_mix_00" / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"classes\.txt must list 10 distinct names"):
        list_mixes(download)


@pytest.mark.parametrize("damage, message", [
    ("drop t10k-labels-idx1-ubyte.gz", r"lacks t10k-labels-idx1-ubyte\[\.gz\]"),
    ("drop train-images-idx3-ubyte.gz", r"lacks train-images-idx3-ubyte\[\.gz\]"),
    ("short train-labels", r"disagree: 100 images but 99 labels"),
    ("bad label", r"train-labels-idx1-ubyte\.gz: label 42"),
    ("wrong magic", r"t10k-images-idx3-ubyte\.gz has bad magic"),
])
def test_corrupt_mix_directory(download: Path, damage: str, message: str) -> None:
    mix_dir = download / "conv_div_mix_00"
    if damage.startswith("drop"):
        (mix_dir / damage.split()[1]).unlink()
    elif damage == "short train-labels":
        write(mix_dir / "train-labels-idx1-ubyte.gz", np.zeros(99, dtype=np.uint8), gz=True)
    elif damage == "bad label":
        write(mix_dir / "train-labels-idx1-ubyte.gz", np.full(100, 42, dtype=np.uint8), gz=True)
    else:
        raw = gzip.decompress((mix_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
        (mix_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x00\x00"
                                                                          + raw[4:]))
    with pytest.raises(DataError, match=message):
        list_mixes(download)
    with pytest.raises(DataError, match=message):
        load_mix(download, 0)
    assert load_mix(download, 10).index == 10  # the other mixes are unaffected


def test_a_directory_with_neither_layout(tmp_path: Path) -> None:
    (tmp_path / "conv_div_mix_xx").mkdir()
    with pytest.raises(DataError, match=r"no manifest .* no conv_div_mix_NN"):
        list_mixes(tmp_path)


# --- writing our mixes in idx ------------------------------------------------------------


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from ffqueue.data.doodles import write_doodles

    root = tmp_path_factory.mktemp("layouts")
    write_doodles(root / "doodles", per_class=30, seed=0)
    build_mixes(root / "doodles", root / "npz", CONVERGENT, DIVERGENT, per_class=30)
    build_mixes(root / "doodles", root / "idx", CONVERGENT, DIVERGENT, per_class=30,
                layout="idx")
    return root / "npz", root / "idx"


def test_idx_mixes_read_back_identical(both_layouts: tuple[Path, Path]) -> None:
    npz, written = both_layouts
    assert sorted(p.name for p in (written / "conv_div_mix_04").iterdir()) == [
        "classes.txt", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "validation-images-idx3-ubyte.gz", "validation-labels-idx1-ubyte.gz"]
    a, b = list_mixes(npz), list_mixes(written)
    assert [m.content_hash for m in a] == [m.content_hash for m in b]
    assert [m.classes for m in a] == [m.classes for m in b]
    for k in (0, 4, 10):
        x, y = load_mix(npz, k), load_mix(written, k, expected_hash=a[k].content_hash)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
            assert getattr(x, name).dtype == getattr(y, name).dtype
    # The files are plain MNIST: a reader that knows nothing of ffqueue gets the same data.
    raw = gzip.decompress((written / "conv_div_mix_04" / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"
    n = struct.unpack(">I", raw[4:8])[0]
    np.testing.assert_array_equal(np.frombuffer(raw[16:], np.uint8).reshape(n, 784),
                                  load_mix(npz, 4).x_test)


def test_idx_without_manifest_gives_the_same_hashes(both_layouts: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    npz, written = both_layouts
    shutil.copytree(written, tmp_path / "shared")
    (tmp_path / "shared" / "mixes.json").unlink()  # as someone downloading only the idx dirs
    assert [m.content_hash for m in list_mixes(tmp_path / "shared")] == [
        m.content_hash for m in list_mixes(npz)]


def test_idx_rebuild_is_a_cache_hit_and_tampering_is_caught(both_layouts: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    _, written = both_layouts
    out = tmp_path / "idx"
    shutil.copytree(written, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    source = written.parent / "doodles"
    build_mixes(source, out, CONVERGENT, DIVERGENT, per_class=30, layout="idx")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    labels = out / "conv_div_mix_03" / "t10k-labels-idx1-ubyte.gz"
    y = idx.read_labels(labels)
    y[0] = (y[0] + 1) % 10
    write(labels, y.astype(np.uint8), gz=True)
    with pytest.raises(DataError, match="differs from the manifest"):
        load_mix(out, 3)
    build_mixes(source, out, CONVERGENT, DIVERGENT, per_class=30, layout="idx")  # repairs it
    assert load_mix(out, 3).content_hash == list_mixes(written)[3].content_hash


def test_unknown_layout(both_layouts: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown mix layout 'zip'"):
        build_mixes(both_layouts[0].parent / "doodles", tmp_path, CONVERGENT, DIVERGENT,
                    per_class=30, layout="zip")


def test_submit_and_execute_runs_on_a_forma_fluens_directory(settings, download: Path) -> None:
    from sqlalchemy import select

    from ffqueue.db import session_scope
    from ffqueue.models import Dataset
    from ffqueue.runner import execute_run
    from ffqueue.scheduler import submit
    from ffqueue.sweeps import TrainConfig, make_definition

    definition = make_definition(name="ff", mixes_dir=download, specs=[[]], seeds=[0],
                                 mix_indices=[0, 10], train=TrainConfig(epochs=1, batch_size=32))
    with session_scope(settings) as session:
        submission = submit(definition, session=session)
    outcomes = [execute_run(run_id, settings=settings) for run_id in submission.to_publish]
    assert [o.status for o in outcomes] == ["done", "done"]
    with session_scope(settings) as session:
        datasets = session.scalars(select(Dataset).order_by(Dataset.mix_index)).all()
        assert [d.mix_index for d in datasets] == [0, 10]
        assert [d.content_hash for d in datasets] == [
            m.content_hash for m in list_mixes(download) if m.index in (0, 10)]
        assert datasets[0].classes == [f"class_{i}" for i in range(10)]
        assert datasets[0].n_test == 20
