"""Data for the model-decay experiments: drawings, the eleven mixes, and how to read them.

- `quickdraw`: read, write and render files in QuickDraw's numpy_bitmap format.
- `doodles`: a synthetic stand-in for QuickDraw with 20 classes, 10 convergent and 10 divergent
  (their stroke templates in `shapes`).
- `mixes`: build the mixes mix_00..mix_10 from such files, list and load them with hash checks,
  in our npz layout or the Forma Fluens idx layout.
- `idx`: MNIST idx files and the ``conv_div_mix_NN`` directories the article published.
- `classes`: which classes are convergent: presets, class-list files, QuickDraw's 345 names.
- `rank`: the convergence measures of every class of a directory, rankings and ROC AUCs.
- `figure`: the grid of average images, convergent beside divergent.
"""

from ffqueue.data.doodles import CONVERGENT, DIVERGENT, generate, write_doodles
from ffqueue.data.mixes import (
    N_MIXES,
    Mix,
    MixInfo,
    build_mixes,
    list_mixes,
    load_mix,
    mix_classes,
    mix_name,
)
from ffqueue.data.quickdraw import list_categories, open_category, render, save_category

__all__ = [
    "CONVERGENT",
    "DIVERGENT",
    "N_MIXES",
    "Mix",
    "MixInfo",
    "build_mixes",
    "generate",
    "list_categories",
    "list_mixes",
    "load_mix",
    "mix_classes",
    "mix_name",
    "open_category",
    "render",
    "save_category",
    "write_doodles",
]
