"""Decay fits against oracles: numpy.polyfit and hand-computed lines."""

import numpy as np
import pytest

from ffqueue.analysis import (
    class_accuracies,
    divergent_fraction,
    eta_seconds,
    fit_decay,
    mean_class_accuracy,
    mean_interval,
    measure_agreement,
    rank_classes,
    rankings,
    spearman,
    summarize_seeds,
)


def test_exact_line_by_hand():
    mixes = list(range(11))
    acc = [0.9 - 0.3 * m / 10 for m in mixes]  # slope -0.3 per unit divergent fraction
    fit = fit_decay(mixes, acc)
    assert fit is not None
    assert fit.slope == pytest.approx(-0.3)
    assert fit.intercept == pytest.approx(0.9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.stderr == pytest.approx(0.0, abs=1e-12)
    assert fit.max_accuracy == pytest.approx(0.9)
    assert not fit.partial


def test_matches_polyfit_on_noisy_curves():
    rng = np.random.default_rng(7)
    for _ in range(20):
        mixes = sorted(rng.choice(11, size=rng.integers(3, 12), replace=False).tolist())
        acc = rng.uniform(0.3, 0.95, size=len(mixes))
        fit = fit_decay(mixes, acc)
        x = np.array([divergent_fraction(m) for m in mixes])
        slope, intercept = np.polyfit(x, acc, 1)
        r = np.corrcoef(x, acc)[0, 1]
        assert fit is not None
        assert fit.slope == pytest.approx(slope)
        assert fit.intercept == pytest.approx(intercept)
        assert fit.r2 == pytest.approx(r * r)
        assert fit.partial == (len(mixes) < 11)


def test_hand_computed_three_points():
    # x = 0, .1, .2 ; y = 1, 0, 1 → slope 0, intercept 2/3, r² 0
    fit = fit_decay([0, 1, 2], [1.0, 0.0, 1.0])
    assert fit is not None
    assert fit.slope == pytest.approx(0.0, abs=1e-12)
    assert fit.intercept == pytest.approx(2 / 3)
    assert fit.r2 == pytest.approx(0.0, abs=1e-12)
    assert fit.partial


def test_too_few_mixes_give_no_fit():
    assert fit_decay([0, 1], [0.9, 0.8]) is None
    assert fit_decay([0, 1, 2], [0.9, float("nan"), 0.7]) is None


def test_flat_curve_is_a_perfect_zero_slope():
    fit = fit_decay([0, 5, 10], [0.5, 0.5, 0.5])
    assert fit is not None and fit.slope == pytest.approx(0.0) and fit.r2 == 1.0


def test_mean_interval():
    one = mean_interval([0.2])
    assert (one.mean, one.low, one.high) == (0.2, 0.2, 0.2)
    # two values 0 and 2: mean 1, sem 1, t(0.975, 1) = 12.7062
    two = mean_interval([0.0, 2.0])
    assert two.mean == 1.0
    assert two.high - two.mean == pytest.approx(12.7062, rel=1e-4)


# ---------------------------------------------------------------- seeds and rankings


def test_fit_ignores_missing_accuracies():
    fit = fit_decay([0, 1, 2, 3], [0.9, None, 0.7, 0.6])
    assert fit is not None and fit.n == 3
    slope, intercept = np.polyfit([0.0, 0.2, 0.3], [0.9, 0.7, 0.6], 1)
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)


def test_fit_matches_linregress_stderr():
    from scipy import stats

    mixes = list(range(11))
    acc = [0.9, 0.88, 0.87, 0.8, 0.82, 0.75, 0.74, 0.7, 0.71, 0.66, 0.6]
    oracle = stats.linregress(np.arange(11) / 10, acc)
    fit = fit_decay(mixes, acc)
    assert fit is not None
    assert fit.stderr == pytest.approx(oracle.stderr)
    assert fit.r2 == pytest.approx(oracle.rvalue ** 2)


def test_mean_interval_matches_scipy():
    from scipy import stats

    values = [-0.31, -0.25, -0.28, -0.35]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    summary = mean_interval(values)
    assert (summary.low, summary.high) == (pytest.approx(low), pytest.approx(high))
    assert summary.n == 4


def test_summarize_seeds_skips_unfitted_seeds():
    summary = summarize_seeds("fc16", [-0.2, None, -0.4], [0.8, 0.7, 0.9], [False, True, False])
    assert summary.seeds == 3 and summary.fitted == 2
    assert summary.slope is not None and summary.slope.mean == pytest.approx(-0.3)
    assert summary.max_accuracy is not None and summary.max_accuracy.mean == pytest.approx(0.8)
    assert summary.partial
    assert summarize_seeds("x", [None], [None], [True]).slope is None


def test_rankings_least_decay_and_best_accuracy():
    summaries = [summarize_seeds("a", [-0.5], [0.9], [False]),
                 summarize_seeds("b", [-0.1], [0.7], [False]),
                 summarize_seeds("c", [None], [0.8], [True]),
                 summarize_seeds("d", [0.05], [None], [False])]
    ranked = rankings(summaries)
    assert ranked["least_decay"] == ["d", "b", "a", "c"]
    assert ranked["best_accuracy"] == ["a", "c", "b", "d"]


# ---------------------------------------------------------------- classes


def test_class_accuracies_by_hand():
    confusion = [[8, 2, 0], [1, 3, 0], [0, 0, 0]]
    per_class = class_accuracies(confusion)
    assert per_class[0] == pytest.approx(0.8) and per_class[1] == pytest.approx(0.75)
    assert np.isnan(per_class[2])  # no test samples of class 2
    with pytest.raises(ValueError):
        class_accuracies([[1, 2, 3]])


def test_mean_class_accuracy_averages_over_the_runs_that_hold_the_class():
    runs = [(["cat", "dog"], [[9, 1], [5, 5]]),  # cat 0.9, dog 0.5
            (["cat", "owl"], [[7, 3], [0, 10]])]  # cat 0.7, owl 1.0
    result = mean_class_accuracy(runs)
    assert result["cat"].accuracy == pytest.approx(0.8) and result["cat"].runs == 2
    assert result["dog"].accuracy == pytest.approx(0.5) and result["dog"].runs == 1
    assert result["owl"].accuracy == pytest.approx(1.0)


def test_spearman_matches_scipy_and_hand_cases():
    from scipy import stats

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40])[0] == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    # ranks x = 1..5, y ranks = 2,1,4,3,5: d² = 1+1+1+1+0 = 4, rho = 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [0.2, 0.1, 0.4, 0.3, 0.5])[0] == pytest.approx(0.8)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=15), rng.normal(size=15)
    rho, p = spearman(x, y)
    oracle = stats.spearmanr(x, y)
    assert (rho, p) == (pytest.approx(oracle.statistic), pytest.approx(oracle.pvalue))
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_measure_agreement_by_hand():
    values = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": None}
    difficulty = {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.4, "e": 0.5}
    groups = {"a": "convergent", "b": "convergent", "c": "divergent", "d": "divergent",
              "e": "divergent"}
    result = measure_agreement("entropy", values, difficulty, groups)
    assert result.classes == 4  # e has no value
    assert result.spearman == pytest.approx(0.8)  # ranks 1,2,3,4 vs 1,3,2,4
    assert result.auc == pytest.approx(1.0)  # every divergent value above every convergent one
    flipped = measure_agreement("v", {k: -v for k, v in values.items() if v}, difficulty, groups)
    assert flipped.auc == pytest.approx(0.0) and flipped.spearman == pytest.approx(-0.8)
    one_group = measure_agreement("v", values, difficulty, dict.fromkeys(values, "convergent"))
    assert one_group.auc is None


def test_rank_classes_and_eta():
    assert rank_classes({"a": 1.0, "b": 3.0, "c": None, "d": 2.0}) == ["b", "d", "a", "c"]
    assert rank_classes({"a": 1.0, "b": 3.0}, descending=False) == ["a", "b"]
    assert eta_seconds(10, 6.0, 2) == pytest.approx(30.0)
    assert eta_seconds(10, 6.0, 0) == pytest.approx(60.0)  # nobody running: one worker
    assert eta_seconds(0, None, 1) == 0.0
    assert eta_seconds(3, None, 1) is None


# ---------------------------------------------------------------- stored, on both databases

SMALL = [[], [{"type": "conv", "filters": 4, "kernel": 3}, {"type": "pool", "size": 2}]]


def _curves(settings, sweep_id):
    from sqlalchemy import text

    from ffqueue.db import get_engine

    with get_engine(settings).connect() as connection:
        rows = connection.execute(text(
            "SELECT architecture, seed, mix_index, test_accuracy FROM decay_curves "
            "WHERE sweep_id = :s ORDER BY architecture, seed, mix_index"), {"s": sweep_id}).all()
    curves = {}
    for arch, seed, mix, acc in rows:
        curves.setdefault((arch, seed), []).append((mix, acc))
    return curves


def test_stored_fits_match_polyfit_and_the_known_slope(settings, tiny_mixes):
    from ffqueue.data.mixes import list_mixes
    from ffqueue.db import session_scope
    from ffqueue.results import analyze_sweep, decay_rows, resolve_sweep
    from tests.sweep_factory import class_offset, expected_line, finish, make_sweep

    classes = {info.index: info.classes for info in list_mixes(tiny_mixes)}
    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=SMALL)
    finish(settings, sweep_id, weights=False)
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        rows = decay_rows(resolve_sweep(sweep_id, session=session), session=session)
    curves = _curves(settings, sweep_id)
    assert len(rows) == len(curves) == 4  # 2 architectures x 2 seeds
    for row in rows:
        points = curves[(row["architecture"], row["seed"])]
        x = np.array([m / 10 for m, _ in points])
        y = np.array([a for _, a in points])
        slope, intercept = np.polyfit(x, y, 1)
        assert row["slope"] == pytest.approx(slope) and row["intercept"] == pytest.approx(intercept)
        assert row["max_accuracy"] == pytest.approx(y.max())
        assert row["mixes"] == 11 and not row["partial"]
        if row["seed"] == 0:  # no jitter: the formula's slope, up to rounding of the counts
            p_conv, drop = expected_line(row["params"], row["depth"],
                                         row["architecture"] != "perceptron")
            formula = [np.mean([p_conv - drop * (pos >= 10 - k) + class_offset(name)
                                for pos, name in enumerate(classes[k])]) for k in range(11)]
            expected = np.polyfit(np.arange(11) / 10, formula, 1)[0]
            assert row["slope"] == pytest.approx(expected, abs=0.005)
            assert expected == pytest.approx(-drop, abs=0.05)


def test_incomplete_curves_are_partial_and_need_three_mixes(settings, tiny_mixes):
    from sqlalchemy import select

    from ffqueue.db import session_scope
    from ffqueue.models import Dataset, Run
    from ffqueue.results import analyze_sweep, decay_rows, resolve_sweep
    from tests.sweep_factory import finish, make_sweep

    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=SMALL[:1], seeds=(0, 1))
    few = Run.dataset_id.in_(select(Dataset.id).where(Dataset.mix_index.in_([0, 5, 10])))
    finish(settings, sweep_id, where=few & (Run.seed == 0), weights=False)
    finish(settings, sweep_id, where=few & (Run.seed == 1) & (Run.id % 2 == 0), weights=False)
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        rows = {r["seed"]: r for r in decay_rows(resolve_sweep(sweep_id, session=session),
                                                 session=session)}
    assert rows[0]["mixes"] == 3 and rows[0]["partial"] and rows[0]["slope"] is not None
    assert rows[1]["mixes"] < 3 and rows[1]["partial"] and rows[1]["slope"] is None
    assert rows[1]["max_accuracy"] is not None


def test_class_results_match_the_confusions_and_the_images(settings, tiny_mixes):
    from sqlalchemy import select

    from ffqueue.db import session_scope
    from ffqueue.measures import normalized_entropy, pixel_variance
    from ffqueue.models import Dataset, Run, Sweep
    from ffqueue.results import analyze_sweep, class_rows, resolve_sweep
    from tests.sweep_factory import finish, make_sweep

    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=SMALL[:1], seeds=(0,))
    finish(settings, sweep_id, weights=False)
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        rows = {r["class"]: r for r in class_rows(resolve_sweep(sweep_id, session=session),
                                                  session=session)}
        runs = session.execute(select(Dataset.classes, Dataset.mix_index, Run.confusion)
                               .join(Dataset)).all()
    assert len(rows) == 20
    # Oracle: a plain loop over the confusion matrices.
    seen = {}
    for classes, _, confusion in runs:
        for i, name in enumerate(classes):
            seen.setdefault(name, []).append(confusion[i][i] / sum(confusion[i]))
    mix00 = next(c for c, m, _ in runs if m == 0)
    for name, values in seen.items():
        assert rows[name]["accuracy"] == pytest.approx(sum(values) / len(values))
        assert rows[name]["runs"] == len(values)
        assert rows[name]["kind"] == ("convergent" if name in mix00 else "divergent")
    with np.load(tiny_mixes / "mix_00.npz") as z:
        x = np.concatenate([z["x_train"], z["x_val"], z["x_test"]])
        y = np.concatenate([z["y_train"], z["y_val"], z["y_test"]])
        names = [str(c) for c in z["classes"]]
    avg = x[y == 0].reshape(-1, 28, 28).astype(float).mean(axis=0)
    assert rows[names[0]]["entropy"] == pytest.approx(normalized_entropy(avg))
    assert rows[names[0]]["pixel_variance"] == pytest.approx(pixel_variance(avg))
    # The measures are kept: the mixes need not be readable for the next analysis.
    with session_scope(settings) as session:
        session.get(Sweep, sweep_id).mixes_dir = "/nonexistent/mixes"
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        again = {r["class"]: r for r in class_rows(resolve_sweep(sweep_id, session=session),
                                                   session=session)}
    assert again[names[0]]["entropy"] == pytest.approx(rows[names[0]]["entropy"])


def test_classes_without_readable_mixes_still_get_accuracies(settings, tiny_mixes):
    from ffqueue.db import session_scope
    from ffqueue.models import Sweep
    from ffqueue.results import analyze_sweep, class_rows, resolve_sweep
    from tests.sweep_factory import finish, make_sweep

    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=SMALL[:1], seeds=(0,))
    finish(settings, sweep_id, weights=False)
    with session_scope(settings) as session:
        session.get(Sweep, sweep_id).mixes_dir = "/nonexistent/mixes"
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        rows = class_rows(resolve_sweep(sweep_id, session=session), session=session)
    assert len(rows) == 20
    assert all(r["entropy"] is None and r["accuracy"] is not None for r in rows)


def test_autoencoder_loss_is_computed_on_request_and_kept(settings, tiny_mixes):
    from ffqueue.data.mixes import list_mixes
    from ffqueue.db import session_scope
    from ffqueue.results import analyze_sweep, class_rows, resolve_sweep
    from tests.sweep_factory import finish, make_sweep
    from worker.autoencoder import train_autoencoder

    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=SMALL[:1], seeds=(0,))
    finish(settings, sweep_id, weights=False)

    def rows():
        with session_scope(settings) as session:
            sweep = resolve_sweep(sweep_id, session=session)
            return {r["class"]: r for r in class_rows(sweep, session=session)}

    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
    assert all(r["ae_loss"] is None for r in rows().values())
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session, autoencoder=True)
    with_ae = rows()
    assert all(r["ae_loss"] is not None and r["ae_loss"] > 0 for r in with_ae.values())
    # Oracle: the class's drawings as the first mix holding it stores them (the mixes
    # share a class's drawings, not necessarily their order).
    name = list_mixes(tiny_mixes)[-1].classes[3]
    first = next(info for info in list_mixes(tiny_mixes) if name in info.classes)
    with np.load(first.path) as z:
        x = np.concatenate([z["x_train"], z["x_val"], z["x_test"]])
        y = np.concatenate([z["y_train"], z["y_val"], z["y_test"]])
    label = first.classes.index(name)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the analysis trains it: bit for bit the same
    try:
        oracle = train_autoencoder(x[y == label]).test_loss
    finally:
        torch.set_num_threads(threads)
    assert with_ae[name]["ae_loss"] == pytest.approx(oracle)
    with session_scope(settings) as session:  # a plain analysis keeps the losses
        analyze_sweep(sweep_id, session=session)
    assert {c: r["ae_loss"] for c, r in rows().items()} == {
        c: r["ae_loss"] for c, r in with_ae.items()}
