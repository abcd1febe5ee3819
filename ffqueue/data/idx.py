"""MNIST's idx format, as the Forma Fluens model-decay data set was published.

The article's download holds one directory per mix, ``conv_div_mix_00`` … ``conv_div_mix_10``,
each in the layout TensorFlow's ``input_data.read_data_sets`` reads::

    train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]

An idx file is a big-endian header -- two zero bytes, a type code (0x08: unsigned byte), the
number of dimensions, then each dimension as a uint32 -- followed by the data.  Images are
(N, 28, 28), labels (N,).  Files may be gzipped or not (recognised by content, not by name).

Two optional extras, which this module writes and reads but the original data lacks:
``validation-images-idx3-ubyte.gz`` / ``validation-labels-idx1-ubyte.gz`` (the validation split)
and ``classes.txt`` (one class name per line, label order).  Without validation files the
validation split is carved from train, stratified and deterministic: of each label's training
drawings, in file order, the first ``n // VAL_DIVISOR`` become validation (TensorFlow, too,
takes its validation images from the front of train).  Without ``classes.txt`` the classes are
called ``class_0`` … ``class_9``.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ffqueue.data.files import atomic_write
from ffqueue.errors import DataError

SIDE = 28
UBYTE = 0x08
IMAGES_NDIM, LABELS_NDIM = 3, 1
MIX_DIR = re.compile(r"conv_div_mix_(\d{2})")
CLASSES_FILE = "classes.txt"
VAL_DIVISOR = 10  # without validation files, a tenth of each class's training drawings
N_CLASSES = 10
# Split name in our arrays -> file prefix in the idx layout.
SPLIT_FILES = {"train": "train", "val": "validation", "test": "t10k"}
_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
          0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"


def mix_dir_name(index: int) -> str:
    """``mix_dir_name(3) == "conv_div_mix_03"``."""
    return f"conv_div_mix_{index:02d}"


def find_mix_dirs(root: Path) -> dict[int, Path]:
    """The ``conv_div_mix_NN`` subdirectories of `root`, by index (empty if there are none)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for path in root.iterdir():
        match = MIX_DIR.fullmatch(path.name)
        if match and path.is_dir():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def split_file(mix_dir: Path, split: str, kind: str) -> Path | None:
    """The file holding `kind` ("images" or "labels") of `split`, plain or gzipped, or None."""
    ndim = IMAGES_NDIM if kind == "images" else LABELS_NDIM
    stem = f"{SPLIT_FILES[split]}-{kind}-idx{ndim}-ubyte"
    for name in (stem, f"{stem}.gz"):  # the plain file wins: someone unpacked the download
        if (Path(mix_dir) / name).is_file():
            return Path(mix_dir) / name
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"idx file {path} does not exist") from None
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"idx file {path} is unreadable or a broken gzip stream: {e}") from None
    return raw


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one idx file of unsigned bytes with `ndim` dimensions, checking its header and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"idx file {path} is too short for an idx header ({len(raw)} bytes)")
    zero, code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _TYPES:
        raise DataError(f"idx file {path} has bad magic number 0x{raw[:4].hex()}, expected "
                        f"0x{UBYTE:06x}{ndim:02x}: not an idx file")
    if code != UBYTE:
        raise DataError(f"idx file {path} holds {_TYPES[code]} (type 0x{code:02x}), expected "
                        f"unsigned byte (0x08)")
    if dims != ndim:
        raise DataError(f"idx file {path} has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"idx file {path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"idx file {path} is {what}: {len(raw)} bytes, expected {expected} "
                        f"for shape {shape}")
    # A copy: arrays over `bytes` are read-only, and torch warns about those.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_images(path: Path) -> np.ndarray:
    """An idx3 image file as (N, 784) uint8; the images must be 28x28."""
    x = read_idx(path, IMAGES_NDIM)
    if x.shape[1:] != (SIDE, SIDE):
        raise DataError(f"idx file {path} holds {x.shape[1]}x{x.shape[2]} images, "
                        f"expected {SIDE}x{SIDE}")
    return x.reshape(len(x), SIDE * SIDE)


def read_labels(path: Path, n_classes: int = N_CLASSES) -> np.ndarray:
    """An idx1 label file as (N,) int64, every label in 0..n_classes-1."""
    y = read_idx(path, LABELS_NDIM)
    if y.size and int(y.max()) >= n_classes:
        bad = int(np.flatnonzero(y >= n_classes)[0])
        raise DataError(f"idx file {path}: label {int(y[bad])} at position {bad} is out of "
                        f"range 0..{n_classes - 1}")
    return y.astype(np.int64)


def encode_idx(a: np.ndarray) -> bytes:
    """The idx bytes of a uint8 array (header, then the data in C order)."""
    a = np.ascontiguousarray(a)
    if a.dtype != np.uint8 or not 1 <= a.ndim <= 255:
        raise DataError(f"idx: can only write uint8 arrays, got {a.dtype} with {a.ndim} dims")
    return struct.pack(f">HBB{a.ndim}I", 0, UBYTE, a.ndim, *a.shape) + a.tobytes()


def _write_file(path: Path, data: bytes, compress: bool) -> None:
    """Write atomically; gzip without a timestamp or name so equal data gives equal files."""
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write(path, lambda f: f.write(data))


def write_mix_dir(mix_dir: Path, classes: Sequence[str], arrays: Mapping[str, np.ndarray],
                  compress: bool = True) -> None:
    """Write one mix as an idx directory: 6 split files (gzipped by default) and classes.txt."""
    mix_dir = Path(mix_dir)
    mix_dir.mkdir(parents=True, exist_ok=True)
    for split, prefix in SPLIT_FILES.items():
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if y.size and (y.min() < 0 or y.max() > 255):
            raise DataError(f"idx: labels of {split} do not fit in a byte")
        suffix = ".gz" if compress else ""
        for kind, a, ndim in (("images", x.reshape(-1, SIDE, SIDE), IMAGES_NDIM),
                              ("labels", y.astype(np.uint8), LABELS_NDIM)):
            other = mix_dir / f"{prefix}-{kind}-idx{ndim}-ubyte{'' if compress else '.gz'}"
            other.unlink(missing_ok=True)  # never leave a stale twin that would be read instead
            _write_file(mix_dir / f"{prefix}-{kind}-idx{ndim}-ubyte{suffix}", encode_idx(a),
                        compress)
    if any("\n" in c or not c.strip() for c in classes):
        raise DataError(f"idx: class names must be non-blank single lines, got {list(classes)}")
    _write_file(mix_dir / CLASSES_FILE, "".join(f"{c}\n" for c in classes).encode(), False)


def read_classes(mix_dir: Path, n_classes: int = N_CLASSES) -> tuple[str, ...]:
    """Class names from ``classes.txt``, or ``class_0`` … when the file is absent."""
    path = Path(mix_dir) / CLASSES_FILE
    if not path.is_file():
        return tuple(f"class_{i}" for i in range(n_classes))
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"class names file {path} is unreadable: {e}") from None
    names = [n for n in names if n]
    if len(names) != n_classes or len(set(names)) != n_classes:
        raise DataError(f"class names file {path} must list {n_classes} distinct names, one a "
                        f"line; it lists {len(names)}")
    return tuple(names)


def carve_validation(y: np.ndarray, divisor: int = VAL_DIVISOR) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (train, validation) row indices, stratified and deterministic.

    Of each label's rows, in file order, the first ``count // divisor`` go to validation.
    Both index arrays keep file order.
    """
    val = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        val[rows[: len(rows) // divisor]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


def read_mix_dir(mix_dir: Path, n_classes: int = N_CLASSES
                 ) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Read one idx mix directory: its class names and the six arrays of our mixes.

    x arrays are (N, 784) uint8, y arrays (N,) int64.  Each split's images and labels must
    agree in number; train and test must exist; validation is read or carved from train.
    """
    mix_dir = Path(mix_dir)
    if not mix_dir.is_dir():
        raise DataError(f"idx mix directory {mix_dir} does not exist")
    arrays: dict[str, np.ndarray] = {}
    for split in SPLIT_FILES:
        images, labels = split_file(mix_dir, split, "images"), split_file(mix_dir, split, "labels")
        if split == "val" and images is None and labels is None:
            continue
        for kind, path in (("images", images), ("labels", labels)):
            if path is None:
                ndim = IMAGES_NDIM if kind == "images" else LABELS_NDIM
                raise DataError(f"idx mix directory {mix_dir} lacks "
                                f"{SPLIT_FILES[split]}-{kind}-idx{ndim}-ubyte[.gz]")
        assert images is not None and labels is not None
        x, y = read_images(images), read_labels(labels, n_classes)
        if len(x) != len(y):
            raise DataError(f"idx files {images} and {labels} disagree: {len(x)} images but "
                            f"{len(y)} labels")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    if "x_val" not in arrays:
        train, val = carve_validation(arrays["y_train"])
        x, y = arrays["x_train"], arrays["y_train"]
        arrays.update(x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val])
    return read_classes(mix_dir, n_classes), arrays
