"""``ffqueue report`` in a headless browser, and the status and results commands.

The demo sweep is written straight into an SQLite database (tests/sweep_factory.py):
the 12 fully-connected nets and 6 CNNs, two seeds, eleven tiny mixes, perceptron
weights on disk. The report is made by the real CLI and opened in Chromium.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile

import pytest

from ffqueue import __version__, db
from ffqueue.settings import load_settings
from tests.helpers import ffqueue
from tests.sweep_factory import finish, make_sweep

FIGURES = ["average_images", "fc_decay", "perceptron_weights", "cnn_glyphs", "cnn_decay",
           "accuracy_vs_decay", "accuracy_vs_decay_zoom", "params_vs_decay",
           "convergence_rankings"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Injected into a copy of the page: records errors and, once everything has loaded,
# writes every image's decoded size into the DOM for --dump-dom to show.
CHECK = """<script>
window.__errors = [];
addEventListener('error', e => __errors.push('error: ' + (e.message || (e.target &&
  (e.target.src || e.target.href)) || e.type)), true);
addEventListener('securitypolicyviolation', e => __errors.push('csp: ' + e.blockedURI));
for (const level of ['error', 'warn']) {
  const original = console[level];
  console[level] = (...args) => { __errors.push(level + ': ' + args.join(' '));
                                  original.apply(console, args); };
}
addEventListener('load', () => {
  const images = [...document.images].map(i => ({figure: i.closest('figure')?.id,
    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));
  const out = document.createElement('pre');
  out.id = 'ffq-check';
  out.textContent = JSON.stringify({images, errors: __errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_mixes):
    """The FFQ_* environment of an SQLite database holding a finished demo sweep."""
    home = tmp_path_factory.mktemp("report")
    settings = load_settings(home=home)
    db.upgrade(settings)
    sweep_id = make_sweep(settings, tiny_mixes, name="demo")
    finish(settings, sweep_id)
    db._engine.cache_clear()
    return {"FFQ_HOME": str(home)}


def chromium(url: str) -> tuple[str, str]:
    """(DOM after load, browser log) of a page in headless Chromium."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run scripts/install-browser.sh")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def cli(monkeypatch, capsys, env, *args):
    """Run ``ffqueue ARGS`` in this process: (exit code, stdout, stderr)."""
    from ffqueue.cli import main
    from ffqueue.settings import use_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    use_settings(None)
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_renders_every_figure_in_a_browser(tmp_path, demo):
    out = tmp_path / "report"
    printed = ffqueue("report", "demo", "--out", str(out), "--threshold", "0.8", "--ae",
                      env=demo).stdout.strip()
    page = out / "index.html"
    assert printed == str(page.resolve())
    source = page.read_text()
    for key in FIGURES:
        assert (out / "figures" / f"{key}.png").stat().st_size > 5000, key
        assert f'<figure id="{key}"><h3>' in source
    # One file: every figure is embedded, nothing is fetched.
    assert source.count('src="data:image/png;base64,') == len(FIGURES)
    assert "Not drawn" not in source and "accuracy above 0.8" in source
    assert '<td class="t">ae_loss</td>' in source  # --ae: the autoencoder's agreement row
    assert "http://" not in source and "https://" not in source
    for needle in ("Least decay", "Best accuracy", "content hash", "node-a", "node-b",
                   "training seconds", "database_url", f'<td class="t">{__version__}</td>'):
        assert needle in source, needle

    # A copy with a check script (the page has none, and its CSP forbids them): every
    # image decodes, and nothing logs an error or violates the CSP.
    check = out / "check.html"
    check.write_text(source.replace("style-src 'unsafe-inline'",
                                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
                     .replace("<head>", "<head>" + CHECK, 1))
    dom, log = chromium(check.as_uri())
    found = re.search(r'<pre id="ffq-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert result["errors"] == []
    assert "CONSOLE" not in log, log
    assert sorted(i["figure"] for i in result["images"]) == sorted(FIGURES)
    for image in result["images"]:
        assert image["complete"] and image["width"] > 300 and image["height"] > 150, image


def test_report_of_an_unknown_sweep_fails_in_one_line(tmp_path, demo, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, demo, "report", "nope", "--out", str(tmp_path / "r"))
    assert code == 1 and err.strip() == "error: no sweep 'nope'"
    assert not (tmp_path / "r" / "index.html").exists()


def test_status_shows_presets_and_an_eta(demo, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, demo, "status", "demo", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["total"] == info["done"] == (12 + 6) * 2 * 11
    presets = {p["preset"]: p for p in info["presets"]}
    assert set(presets) == {"fc12", "custom"}
    assert presets["fc12"]["done"] == 12 * 2 * 11 and presets["custom"]["total"] == 6 * 2 * 11
    assert info["eta_seconds"] == 0.0
    _, table, _ = cli(monkeypatch, capsys, demo, "status", "demo")
    assert "fc12" in table and "custom" in table and "ETA" in table and "264/264" in table
    _, watched, _ = cli(monkeypatch, capsys, demo, "status", "demo", "--watch", "--interval",
                        "0.2")
    assert "396/396" in watched  # an ended sweep: one view, then it returns


def test_results_export_csv_json_and_parquet(tmp_path, demo, monkeypatch, capsys):
    csv_file, json_file = tmp_path / "runs.csv", tmp_path / "runs.json"
    code, _, err = cli(monkeypatch, capsys, demo, "results", "demo", "--preset", "custom",
                       "--format", "csv", "--out", str(csv_file))
    assert code == 0 and "132 runs written" in err
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("run,sweep,sweep_id,preset,architecture")
    assert len(lines) == 1 + 6 * 2 * 11 and all(",custom," in line for line in lines[1:])
    cli(monkeypatch, capsys, demo, "results", "demo", "--architecture", "perceptron",
        "--format", "json", "--out", str(json_file))
    rows = json.loads(json_file.read_text())
    assert len(rows) == 22 and {r["architecture"] for r in rows} == {"perceptron"}
    assert {r["mix"] for r in rows} == set(range(11))

    parquet = tmp_path / "runs.parquet"
    code, _, err = cli(monkeypatch, capsys, demo, "results", "demo", "--format", "parquet",
                       "--out", str(parquet))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert code == 1 and not parquet.exists()
        assert err.strip() == "error: Parquet export needs pyarrow: pip install pyarrow"
    else:
        assert code == 0, err
        assert pq.read_table(parquet).num_rows == 396
    code, _, err = cli(monkeypatch, capsys, demo, "results", "demo", "--format", "parquet")
    assert code != 0 and "--out" in err


def test_analyze_prints_means_over_seeds_and_the_measures(demo, monkeypatch, capsys):
    _, table, _ = cli(monkeypatch, capsys, demo, "analyze", "demo")
    assert "over seeds" in table and "entropy" in table and "pixel_variance" in table
    _, out, _ = cli(monkeypatch, capsys, demo, "analyze", "demo", "--format", "json")
    fits = json.loads(out)
    assert len(fits) == 18 * 2 and all(not f["partial"] for f in fits)


def test_eta_spreads_the_remaining_runs_over_the_running_workers(settings, tiny_mixes):
    from sqlalchemy import select

    from ffqueue.db import session_scope
    from ffqueue.models import Run, RunStatus
    from ffqueue.results import progress_rows, resolve_sweep

    sweep_id = make_sweep(settings, tiny_mixes, presets=("fc12",), cnns=[], seeds=(0,),
                          mix_indices=(0, 5, 10))
    with session_scope(settings) as session:
        ids = session.scalars(select(Run.id).where(Run.sweep_id == sweep_id)
                              .order_by(Run.id)).all()
    finish(settings, sweep_id, where=Run.id.in_(ids[:12]), weights=False)
    with session_scope(settings) as session:
        seconds = [r.train_seconds for r in session.scalars(select(Run).where(
            Run.id.in_(ids[:12])))]
        for i, run in enumerate(session.scalars(select(Run).where(Run.id.in_(ids[12:15])))):
            run.status, run.worker = RunStatus.RUNNING, f"w{i % 2}"  # two workers, three runs
        session.get_one(Run, ids[15]).status = RunStatus.FAILED
        (row,) = progress_rows(resolve_sweep(sweep_id, session=session), session=session)
    assert (row["preset"], row["total"], row["done"], row["running"], row["failed"],
            row["queued"]) == ("fc12", 36, 12, 3, 1, 20)
    mean = sum(seconds) / len(seconds)
    assert row["mean_seconds"] == pytest.approx(mean)
    assert row["eta_seconds"] == pytest.approx((20 + 3) * mean / 2)


def test_watch_returns_when_the_last_run_ends(settings, tiny_mixes, capsys):
    import threading

    from ffqueue.cli_report import watch_progress

    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=[[]], seeds=(0,),
                          mix_indices=(0, 10))
    watcher = threading.Thread(target=watch_progress, args=(str(sweep_id), settings, 0.1))
    watcher.start()
    watcher.join(1.0)
    assert watcher.is_alive()  # two runs still queued: it keeps watching
    finish(settings, sweep_id, weights=False)
    watcher.join(20)
    assert not watcher.is_alive()
    assert "2/2" in capsys.readouterr().out


def test_report_help(monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, {}, "report", "--help")
    assert code == 0 and out.startswith("Usage: ffqueue report [OPTIONS] [SWEEP]")
    assert "--threshold" in out and "--out" in out and "--ae" in out
