"""The ``ffqueue data`` commands, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ffqueue.data.doodles import CONVERGENT, DIVERGENT, write_doodles
from ffqueue.data.mixes import list_mixes
from tests.helpers import ffqueue

PER_CLASS = 30


@pytest.fixture(scope="module")
def doodles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "doodles"
    write_doodles(path, per_class=PER_CLASS, seed=0)
    return path


def test_mixes_in_both_formats_show_the_same_data(doodles: Path, tmp_path: Path) -> None:
    for layout in ("npz", "idx"):
        ffqueue("data", "mixes", "--from", str(doodles), "--out", str(tmp_path / layout),
                "--per-class", str(PER_CLASS), "--format", layout)
    assert (tmp_path / "idx" / "conv_div_mix_10" / "train-images-idx3-ubyte.gz").is_file()
    shown = {layout: json.loads(ffqueue("data", "show", str(tmp_path / layout), "--format",
                                        "json").stdout) for layout in ("npz", "idx")}
    assert shown["npz"] == shown["idx"]
    assert len(shown["idx"]) == 11 and shown["idx"][0]["classes"] == list(CONVERGENT)
    # The article's download has no manifest: show still reads it.
    (tmp_path / "idx" / "mixes.json").unlink()
    again = json.loads(ffqueue("data", "show", str(tmp_path / "idx"), "--format", "json").stdout)
    assert again == shown["npz"]


def test_mixes_from_a_class_file_and_auto(doodles: Path, tmp_path: Path) -> None:
    lists = tmp_path / "lists.yaml"
    lists.write_text(json.dumps({"convergent": list(DIVERGENT), "divergent": list(CONVERGENT)}))
    ffqueue("data", "mixes", "--from", str(doodles), "--out", str(tmp_path / "swapped"),
            "--per-class", str(PER_CLASS), "--classes", str(lists))
    assert list_mixes(tmp_path / "swapped")[0].classes == DIVERGENT
    result = ffqueue("data", "mixes", "--from", str(doodles), "--out", str(tmp_path / "auto"),
                     "--per-class", str(PER_CLASS), "--auto", "--sample", str(PER_CLASS))
    assert "convergent (auto" in result.stderr
    assert set(list_mixes(tmp_path / "auto")[0].classes) == set(CONVERGENT)


def test_rank_doodles_with_the_autoencoder(doodles: Path) -> None:
    result = ffqueue("data", "rank", "--from", str(doodles), "--ae", "--ae-epochs", "2")
    assert "line" in result.stdout and "ROC AUC" in result.stdout
    assert "convergent (preset doodles)" in result.stdout
    aucs = dict(part.split() for part in result.stdout.split("convergent:")[-1].split(", "))
    assert float(aucs["entropy"]) >= 0.9
    rows = json.loads(ffqueue("data", "rank", "--from", str(doodles), "--format", "json").stdout)
    assert len(rows) == 20 and {r["set"] for r in rows} == {"convergent", "divergent"}
    assert [r["entropy"] for r in rows] == sorted(r["entropy"] for r in rows)


def test_figure_is_a_png_of_both_sets(doodles: Path, tmp_path: Path) -> None:
    from matplotlib import image

    out = tmp_path / "figs" / "averages.png"
    ffqueue("data", "figure", "--from", str(doodles), "--out", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = image.imread(out).shape
    assert width > 2 * height > 600  # two panels side by side


@pytest.mark.parametrize("args, message", [
    (["mixes", "--out", "{tmp}/m", "--convergent", "circle"], "together"),
    (["mixes", "--out", "{tmp}/m", "--preset", "quickdraw"], "lacks categories"),
    (["mixes", "--out", "{tmp}/m", "--auto", "--preset", "doodles"], "only one of"),
    (["mixes", "--out", "{tmp}/m", "--classes", "{tmp}/none.yaml"], "does not exist"),
    (["mixes", "--out", "{tmp}/m", "--convergent", "a,b", "--divergent", "c,d"], "exactly 10"),
])
def test_bad_requests_fail_in_one_line_and_write_nothing(doodles: Path, tmp_path: Path,
                                                         args: list[str], message: str) -> None:
    argv = ["data", args[0], "--from", str(doodles), *[a.format(tmp=tmp_path) for a in args[1:]]]
    result = ffqueue(*argv, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "m").exists()


def test_rank_and_show_errors(tmp_path: Path) -> None:
    result = ffqueue("data", "rank", "--from", str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr
    bad = tmp_path / "conv_div_mix_00"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + bytes(12))
    result = ffqueue("data", "show", str(tmp_path), check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1
    assert "lacks train-labels-idx1-ubyte" in lines[0]
    np.save(tmp_path / "lonely.npy", np.zeros((3, 784), dtype=np.uint8))
    result = ffqueue("data", "rank", "--from", str(tmp_path), "--auto", check=False)
    assert result.returncode == 1 and "need at least 20 categories" in result.stderr
