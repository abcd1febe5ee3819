"""The eleven ten-class data sets ("mixes") of the model-decay experiment.

mix_k holds the first 10-k convergent and the first k divergent classes: mix_00 is all
convergent, mix_10 all divergent.  Each class contributes the same `per_class` drawings, sampled
once from its QuickDraw file, to every mix it is in, split the same way (stratified) into
train/val/test, so the mixes differ only in which classes they hold.

On disk a mix directory holds ``mix_00.npz`` .. ``mix_10.npz`` (arrays only, no pickles) and a
manifest ``mixes.json`` listing each mix's classes, sizes and content hash plus the build
parameters.  The content hash is a sha256 over the class names and the six arrays, so identical
data gives an identical hash wherever and whenever it was built; workers check it on load.

The same directory may instead hold the Forma Fluens layout (see `ffqueue.data.idx`):
``conv_div_mix_00`` … ``conv_div_mix_10`` in MNIST idx format, as the article shared its mixes
and as ``build_mixes(..., layout="idx")`` writes them (then with a manifest too).  `list_mixes`
and `load_mix` read both layouts and give the same MixInfo/Mix; the hash is computed from the
arrays, so a mix written as idx and read back has the hash it had as npz.  A directory without
a manifest (the article's download) is read whole to hash it: seconds for the 270 MB data set.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffqueue.data import idx
from ffqueue.data.files import atomic_write
from ffqueue.data.quickdraw import PIXELS, list_categories, open_category
from ffqueue.errors import DataError

N_MIXES = 11
CLASSES_PER_MIX = 10
MANIFEST = "mixes.json"
FORMAT = 1  # bump when the file layout or the hash recipe changes
_SPLITS = ("train", "val", "test")
_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")  # order fixed: hashed
_DTYPES: dict[str, np.dtype[Any]] = {"x": np.dtype(np.uint8), "y": np.dtype("<i8")}
LAYOUTS = ("npz", "idx")


@dataclass(frozen=True)
class MixInfo:
    """What the manifest says about one mix; reading it loads no arrays."""

    name: str
    index: int
    classes: tuple[str, ...]
    path: Path
    content_hash: str
    n_train: int
    n_val: int
    n_test: int


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == has no single truth value
class Split:
    """A mix's arrays as training needs them: x (N, 784) uint8, y (N,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


@dataclass(frozen=True, eq=False)
class Mix(Split):
    """One loaded mix: its arrays, label i meaning classes[i], and its content hash."""

    name: str
    index: int
    classes: tuple[str, ...]
    content_hash: str


def mix_name(index: int) -> str:
    """``mix_name(3) == "mix_03"``."""
    if not 0 <= index < N_MIXES:
        raise DataError(f"mix index {index} out of range 0..{N_MIXES - 1}")
    return f"mix_{index:02d}"


def mix_classes(convergent: Sequence[str], divergent: Sequence[str], index: int) -> tuple[str, ...]:
    """The classes of mix `index`: the first 10-index convergent, then the first index divergent."""
    mix_name(index)  # validates the index
    return tuple(convergent[: CLASSES_PER_MIX - index]) + tuple(divergent[:index])


def _content_hash(classes: Sequence[str], arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(f"ffqueue-mix-v{FORMAT}\0{len(classes)}\0".encode())
    for name in classes:
        h.update(name.encode() + b"\0")  # NUL cannot occur in a file name, so no ambiguity
    for key in _ARRAYS:
        a = np.ascontiguousarray(arrays[key], dtype=_DTYPES[key[0]])
        h.update(f"{key}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_request(convergent: Sequence[str], divergent: Sequence[str], per_class: int,
                   seed: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Validate build_mixes' arguments; return the per-class (train, val, test) sizes."""
    for what, names in (("convergent", convergent), ("divergent", divergent)):
        if isinstance(names, str) or len(names) != CLASSES_PER_MIX:
            raise DataError(f"need exactly {CLASSES_PER_MIX} {what} class names, got {names!r}")
    names = [*convergent, *divergent]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"class names must be 20 distinct non-empty strings, got {names}")
    if not isinstance(per_class, int) or not isinstance(seed, int) or per_class < 1 or seed < 0:
        raise DataError(f"need per_class >= 1 and seed >= 0, got {per_class} and {seed}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
        raise DataError(f"val_fraction and test_fraction must lie in [0, 1), "
                        f"got {val_fraction} and {test_fraction}")
    n_val, n_test = round(per_class * val_fraction), round(per_class * test_fraction)
    if per_class - n_val - n_test < 1:
        raise DataError(f"per_class={per_class} leaves no training drawings after taking "
                        f"{n_val} for validation and {n_test} for test")
    return per_class - n_val - n_test, n_val, n_test


def _sample_class(path: Path, name: str, per_class: int, seed: int,
                  sizes: tuple[int, int, int]) -> list[np.ndarray]:
    """Draw `per_class` distinct drawings of one class and split them into train/val/test."""
    data = open_category(path)
    if data.shape[0] < per_class:
        raise DataError(f"QuickDraw file {path} holds {data.shape[0]} drawings, "
                        f"fewer than per_class={per_class}")
    # The stream depends on the class name, not its position, so a class draws the same
    # sample whichever list it is in; the trailing 1 keeps it apart from the doodle generator's.
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), 1]))
    # Sorted rows read the memory map front to back.
    rows = np.sort(rng.choice(data.shape[0], size=per_class, replace=False))
    x = np.array(data[rows])  # copy out of the memory map
    order = rng.permutation(per_class)
    cut = np.cumsum(sizes)[:-1]
    return [x[part] for part in np.split(order, cut)]


def _assemble(index: int, classes: tuple[str, ...], samples: Mapping[str, list[np.ndarray]],
              seed: int) -> dict[str, np.ndarray]:
    """The six arrays of one mix, each split shuffled so classes are interleaved."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 2]))
    arrays = {}
    for i, split in enumerate(_SPLITS):
        x = np.concatenate([samples[c][i] for c in classes]).reshape(-1, PIXELS)
        counts = [len(samples[c][i]) for c in classes]
        y = np.repeat(np.arange(len(classes)), counts).astype(_DTYPES["y"])
        order = rng.permutation(len(y))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[order], y[order]
    return arrays


def _write_mix(path: Path, index: int, classes: tuple[str, ...], arrays: Mapping[str, np.ndarray],
               content_hash: str) -> None:
    fields = {"classes": np.array(classes, dtype=str), "index": np.array(index, dtype=np.int64),
              "content_hash": np.array(content_hash), **arrays}
    atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **fields))


def _parse_entry(directory: Path, e: Mapping[str, Any]) -> MixInfo:
    info = MixInfo(name=str(e["name"]), index=int(e["index"]),
                   classes=tuple(str(c) for c in e["classes"]), path=directory / str(e["file"]),
                   content_hash=str(e["content_hash"]), n_train=int(e["n_train"]),
                   n_val=int(e["n_val"]), n_test=int(e["n_test"]))
    if (not 0 <= info.index < N_MIXES or info.name != f"mix_{info.index:02d}"
            or len(info.classes) != CLASSES_PER_MIX or len(info.content_hash) != 64
            or min(info.n_train, info.n_val, info.n_test) < 0):
        raise ValueError(f"bad entry for {info.name!r}")
    return info


def _read_manifest(directory: Path) -> tuple[dict[str, Any], list[MixInfo]]:
    """The manifest as stored, and its entries checked and parsed."""
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"mix directory {directory} has no manifest {MANIFEST} and no "
                        f"conv_div_mix_NN directories; build mixes with `ffqueue data mixes`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        version = manifest["format"]
        if version == FORMAT:
            if manifest.get("layout", "npz") not in LAYOUTS:
                raise ValueError(f"unknown layout {manifest['layout']!r}")
            infos = [_parse_entry(directory, e) for e in manifest["mixes"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"mix manifest {path} is corrupt: {e}") from None
    if version != FORMAT:
        raise DataError(f"mix manifest {path} has format {version}, this ffqueue reads {FORMAT}")
    return manifest, sorted(infos, key=lambda m: m.index)


def list_mixes(directory: Path) -> list[MixInfo]:
    """The mixes of `directory`, by index: our manifest, or a Forma Fluens idx download.

    With a manifest no arrays are loaded.  Without one, the ``conv_div_mix_NN`` directories are
    read and hashed (that is what a content hash needs).
    """
    directory = Path(directory)
    if not (directory / MANIFEST).is_file() and idx.find_mix_dirs(directory):
        infos = []
        for index, path in idx.find_mix_dirs(directory).items():
            mix = _load_idx(directory, index, None)
            infos.append(MixInfo(name=mix.name, index=index, classes=mix.classes, path=path,
                                 content_hash=mix.content_hash, n_train=len(mix.y_train),
                                 n_val=len(mix.y_val), n_test=len(mix.y_test)))
        return infos
    return _read_manifest(directory)[1]


def _layout(directory: Path) -> tuple[str, dict[int, str]]:
    """Which layout `directory` holds, and the hashes its manifest vouches for (if any)."""
    try:
        manifest, infos = _read_manifest(directory)
        return str(manifest.get("layout", "npz")), {m.index: m.content_hash for m in infos}
    except DataError:  # no or a corrupt manifest: go by what files there are
        if idx.find_mix_dirs(directory) and not any(directory.glob("mix_[0-9][0-9].npz")):
            return "idx", {}
        return "npz", {}


def load_mix(directory: Path, index: int, expected_hash: str | None = None) -> Mix:
    """Load and validate mix `index` from `directory`, in either layout.

    Shapes, dtypes and labels are checked and the content hash is recomputed; it must equal the
    hash stored with the data (the npz file's, or our manifest's for idx; else it was altered)
    and, if given, `expected_hash` (else it is not the data the caller recorded, e.g. a sweep's
    mixes were rebuilt differently).
    """
    directory = Path(directory)
    mix_name(index)  # validates the index
    layout, stored = _layout(directory)
    if layout == "idx":
        mix = _load_idx(directory, index, expected_hash)
        if index in stored and stored[index] != mix.content_hash:
            raise DataError(f"idx mix {directory / idx.mix_dir_name(index)}: content hash "
                            f"differs from the manifest's (corrupt or altered)")
        return mix
    return _load_npz(directory, index, expected_hash)


def _load_idx(directory: Path, index: int, expected_hash: str | None) -> Mix:
    path = Path(directory) / idx.mix_dir_name(index)
    if not path.is_dir():
        raise DataError(f"idx mix directory {path} does not exist")
    classes, arrays = idx.read_mix_dir(path, CLASSES_PER_MIX)
    digest = _content_hash(classes, arrays)
    if expected_hash is not None and digest != expected_hash:
        raise DataError(f"idx mix {path}: content hash differs: expected {expected_hash}, "
                        f"files have {digest}")
    return Mix(name=mix_name(index), index=index, classes=classes, content_hash=digest,
               **{k: arrays[k] for k in _ARRAYS})


def _load_npz(directory: Path, index: int, expected_hash: str | None) -> Mix:
    path = Path(directory) / f"{mix_name(index)}.npz"
    if not path.is_file():
        raise DataError(f"mix file {path} does not exist")
    keys = {"classes", "index", "content_hash", *_ARRAYS}
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = keys - set(z.files)
            if missing:
                raise DataError(f"mix file {path} lacks arrays {sorted(missing)}")
            a = {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"mix file {path} is unreadable or corrupt: {e}") from None

    def bad(problem: str) -> DataError:
        return DataError(f"mix file {path}: {problem}")

    classes = a["classes"]
    if classes.dtype.kind != "U" or classes.shape != (CLASSES_PER_MIX,):
        raise bad(f"classes must be {CLASSES_PER_MIX} strings, got {classes.dtype} {classes.shape}")
    if a["index"].shape != () or a["index"].dtype.kind not in "iu":
        raise bad(f"index must be one integer, got {a['index'].dtype} {a['index'].shape}")
    for split in _SPLITS:
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != PIXELS:
            raise bad(f"x_{split} must be (N, {PIXELS}) uint8, got {x.shape} {x.dtype}")
        if y.dtype != np.int64 or y.shape != (x.shape[0],):
            raise bad(f"y_{split} must be ({x.shape[0]},) int64, got {y.shape} {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= CLASSES_PER_MIX):
            raise bad(f"y_{split} holds labels outside 0..{CLASSES_PER_MIX - 1}")
    names = tuple(str(c) for c in classes)
    digest = _content_hash(names, a)
    if digest != str(a["content_hash"]):
        raise bad("content hash differs from the one stored in the file (corrupt or altered)")
    if expected_hash is not None and digest != expected_hash:
        raise bad(f"content hash differs: expected {expected_hash}, file has {digest}")
    if int(a["index"]) != index:  # checked after the hash: a swapped file is a hash mismatch
        raise bad(f"records index {int(a['index'])}, expected {index}")
    return Mix(name=mix_name(index), index=index, classes=names, content_hash=digest,
               **{k: a[k] for k in _ARRAYS})


def _has_hash(directory: Path, index: int, digest: str, layout: str) -> bool:
    try:
        if layout == "idx":
            _load_idx(directory, index, expected_hash=digest)
        else:
            _load_npz(directory, index, expected_hash=digest)
    except DataError:
        return False
    return True


def build_mixes(source_dir: Path, out_dir: Path, convergent: Sequence[str],
                divergent: Sequence[str], per_class: int, seed: int = 0,
                val_fraction: float = 0.1, test_fraction: float = 0.2,
                progress: Callable[[int, int], None] | None = None,
                layout: str = "npz") -> list[MixInfo]:
    """Build the 11 mixes from QuickDraw-format files in `source_dir` into `out_dir`.

    `convergent` and `divergent` each name 10 distinct categories of `source_dir`, in the order
    the mixes take them.  Each class draws `per_class` drawings at random (seeded), split
    per class into round(per_class * fraction) validation and test drawings, the rest training.

    Acts as a cache: a mix file that already holds exactly the data it would be given (its
    content hash verifies and equals the new one) is left untouched, so a repeated build writes
    nothing.  Before any file is rewritten the manifest is removed, and it is written last, so an
    interrupted build never leaves a manifest vouching for files it did not check.
    `progress(done, total)` is called after each class is sampled and each mix is checked or
    written: 20 + 11 steps.

    `layout` "npz" writes ``mix_XX.npz``; "idx" writes the Forma Fluens layout,
    ``conv_div_mix_XX/`` with gzipped idx files, validation files and ``classes.txt`` (see
    `ffqueue.data.idx`), so the mixes can be shared as the article shared its own.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown mix layout {layout!r} (known: {', '.join(LAYOUTS)})")
    sizes = _check_request(convergent, divergent, per_class, seed, val_fraction, test_fraction)
    conv, div = tuple(convergent), tuple(divergent)
    categories = list_categories(Path(source_dir))
    missing = [c for c in conv + div if c not in categories]
    if missing:
        raise DataError(f"QuickDraw directory {source_dir} lacks categories {missing}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total, done = len(conv + div) + N_MIXES, 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    samples = {}
    for name in conv + div:  # each class is sampled once and shared by every mix that has it
        samples[name] = _sample_class(categories[name], name, per_class, seed, sizes)
        step()
    try:
        old: dict[str, Any] | None = _read_manifest(out_dir)[0]
    except DataError:
        old = None  # missing or corrupt: it is rewritten below
    entries = []
    for k in range(N_MIXES):
        classes = mix_classes(conv, div, k)
        arrays = _assemble(k, classes, samples, seed)
        digest = _content_hash(classes, arrays)
        name = mix_name(k)
        # A file that verifies against the hash of what it should hold needs no rewrite.
        file = f"{name}.npz" if layout == "npz" else idx.mix_dir_name(k)
        if not _has_hash(out_dir, k, digest, layout):
            (out_dir / MANIFEST).unlink(missing_ok=True)
            if layout == "npz":
                _write_mix(out_dir / file, k, classes, arrays, digest)
            else:
                idx.write_mix_dir(out_dir / file, classes, arrays)
        entries.append({"name": name, "index": k, "classes": list(classes),
                        "file": file, "content_hash": digest,
                        **{f"n_{s}": len(arrays[f"y_{s}"]) for s in _SPLITS}})
        step()
    params = {"convergent": list(conv), "divergent": list(div), "per_class": per_class,
              "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
              "source_dir": str(Path(source_dir).resolve())}
    manifest = {"format": FORMAT, "layout": layout, "params": params, "mixes": entries}
    if manifest != old or not (out_dir / MANIFEST).is_file():
        text = json.dumps(manifest, indent=2) + "\n"
        atomic_write(out_dir / MANIFEST, lambda f: f.write(text.encode("utf-8")))
    return list_mixes(out_dir)
