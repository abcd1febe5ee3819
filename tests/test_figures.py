"""Figures from plain data: valid PNGs at print resolution, sane with empty inputs too."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ffqueue import figures
from ffqueue.specs import parse_spec

CONVERGENT = ["circle", "square", "line"]
DIVERGENT = ["cat", "tree", "bird"]


def open_png(path):
    image = Image.open(path)
    assert image.format == "PNG"
    dpi = image.info.get("dpi", (0, 0))
    assert min(dpi) >= 150, dpi
    return image


def ring(radius):
    y, x = np.mgrid[:28, :28]
    return np.where(np.abs(np.hypot(x - 13.5, y - 13.5) - radius) < 1.5, 255.0, 0.0)


def points(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [{"architecture": f"net{i}", "slope": float(rng.uniform(-0.4, 0)),
             "max_accuracy": float(rng.uniform(0.6, 0.95)), "depth": int(rng.integers(1, 7)),
             "params": int(10 ** rng.uniform(3, 6)),
             "family": "CNN" if i % 2 else "fully connected"} for i in range(n)]


def test_importing_figures_does_not_import_matplotlib():
    code = ("import sys, ffqueue.figures, ffqueue.report, ffqueue.cli; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_average_images(tmp_path):
    images = {name: ring(4 + i) for i, name in enumerate(CONVERGENT + DIVERGENT)}
    path = figures.average_images(images, CONVERGENT, DIVERGENT, tmp_path / "avg.png",
                                  entropy=dict.fromkeys(images, 3.0))
    image = open_png(path)
    assert image.width > image.height  # two rows of three tiles


def test_fc_decay_one_line_per_net(tmp_path):
    curves = {"perceptron": {k: 0.8 - 0.02 * k for k in range(11)},
              "fc16": {k: 0.85 - 0.015 * k for k in range(11)}}
    image = open_png(figures.fc_decay(curves, {"perceptron": 7850, "fc16": 12730},
                                      tmp_path / "fc.png"))
    assert image.width > 800


def test_perceptron_weights_mosaic_has_a_row_per_class(tmp_path):
    classes = {0: CONVERGENT, 1: CONVERGENT[:2] + DIVERGENT[:1], 2: CONVERGENT[:1] + DIVERGENT[:2]}
    weights = {mix: np.stack([ring(5 + i).ravel() - 100 for i in range(3)]) for mix in classes}
    order = CONVERGENT + DIVERGENT[:2]
    kinds = {**dict.fromkeys(CONVERGENT, "convergent"), **dict.fromkeys(DIVERGENT, "divergent")}
    image = open_png(figures.perceptron_weights(weights, classes, order, kinds,
                                                tmp_path / "w.png"))
    assert image.height > image.width  # five class rows, three mix columns


def test_architecture_glyphs_few_and_many(tmp_path):
    specs = [[], [{"type": "conv", "filters": 8, "kernel": 3}, {"type": "pool", "size": 2}],
             [{"type": "dropout", "p": 0.5}, {"type": "fc", "units": 32}]]
    archs = [{"architecture": parse_spec(s).text, "glyph": parse_spec(s).glyph(),
              "max_accuracy": 0.7 + 0.1 * i} for i, s in enumerate(specs)]
    few = open_png(figures.architecture_glyphs(archs, tmp_path / "few.png"))
    many = open_png(figures.architecture_glyphs(archs * 40, tmp_path / "many.png"))
    assert many.width > 2 * few.width  # a column per net


def test_cnn_decay_and_scatter_plots(tmp_path):
    curves = {f"net{i}": {k: 0.9 - 0.02 * i * k / 10 for k in range(11)} for i in range(5)}
    fits = {name: (-0.02 * i, 0.9) for i, name in enumerate(curves)}
    open_png(figures.cnn_decay(curves, fits, tmp_path / "cnn.png"))
    open_png(figures.accuracy_vs_decay(points(), tmp_path / "acc.png"))
    open_png(figures.accuracy_vs_decay(points(), tmp_path / "zoom.png", threshold=0.72))
    open_png(figures.params_vs_decay(points(), tmp_path / "params.png"))


def test_convergence_rankings(tmp_path):
    rows = [{"class": name, "kind": kind, "entropy": 3.0 + i, "pixel_variance": 0.05 - i / 100,
             "ae_loss": None, "accuracy": 0.9 - i / 20, "difficulty": 0.1 + i / 20}
            for i, (name, kind) in enumerate([(c, "convergent") for c in CONVERGENT]
                                             + [(d, "divergent") for d in DIVERGENT])]
    agreement = {"difficulty": (None, 1.0), "entropy": (1.0, 1.0), "pixel_variance": (-1.0, 0.0)}
    image = open_png(figures.convergence_rankings(rows, agreement, tmp_path / "rank.png"))
    assert image.width > image.height  # three panels side by side (no autoencoder loss)


@pytest.mark.parametrize("draw", [
    lambda p: figures.fc_decay({}, {}, p),
    lambda p: figures.cnn_decay({}, {}, p),
    lambda p: figures.architecture_glyphs([], p),
    lambda p: figures.accuracy_vs_decay([], p),
    lambda p: figures.accuracy_vs_decay(points(), p, threshold=0.99),  # nobody that good
    lambda p: figures.params_vs_decay([{**q, "slope": None} for q in points()], p),
    lambda p: figures.cnn_decay({"a": {0: 0.5, 5: 0.5, 10: 0.5}}, {"a": (0.0, 0.5)}, p),
], ids=["fc", "cnn", "glyphs", "scatter", "zoom", "params", "flat"])
def test_empty_or_degenerate_inputs_still_draw(tmp_path, draw):
    open_png(draw(tmp_path / "empty.png"))
