"""Bad input of every kind: one line on stderr naming the problem, a non-zero exit, and
the database exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from tests.helpers import ffqueue

GOOD = ["--preset", "fc12", "--epochs", "1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_mixes: Path) -> dict[str, Path]:
    """A migrated database holding one submitted sweep, mixes, and broken data files."""
    root = tmp_path_factory.mktemp("bad")
    env = {"FFQ_HOME": str(root / "home")}
    ffqueue("db", "upgrade", env=env)
    ffqueue("sweep", "submit", *GOOD, "--mixes", str(tiny_mixes), "--mix-indices", "0,10",
            env=env)
    good = root / "doodles"
    good.mkdir()
    for name in "abcdefghijklmnopqrst":
        np.save(good / f"{name}.npy", np.zeros((30, 784), dtype=np.uint8))
    broken = {
        "dtype": np.zeros((30, 784), dtype=np.float32),
        "width": np.zeros((30, 700), dtype=np.uint8),
        "empty": np.zeros((0, 784), dtype=np.uint8),
    }
    for kind, array in broken.items():
        folder = root / f"src-{kind}"
        shutil.copytree(good, folder)
        np.save(folder / "a.npy", array)
    truncated = root / "src-truncated"
    shutil.copytree(good, truncated)
    (truncated / "a.npy").write_bytes((good / "a.npy").read_bytes()[:500])
    manifest = root / "mixes-badmanifest"
    shutil.copytree(tiny_mixes, manifest)
    (manifest / "mixes.json").write_text("{ not json")
    return {"root": root, "home": root / "home", "mixes": tiny_mixes, "good": good}


def sweep_file(root: Path, body: str) -> str:
    path = root / f"sweep-{abs(hash(body))}.yaml"
    path.write_text(body)
    return str(path)


def database_dump(home: Path) -> dict[str, list[tuple]]:
    engine = create_engine(f"sqlite:///{home / 'ffqueue.db'}")
    with engine.connect() as connection:
        dump = {table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
                for table in sorted(inspect(connection).get_table_names())}
    engine.dispose()
    return dump


M = "{mixes}"
CASES: list[tuple[str, list[str], dict[str, str], str]] = [
    # --- sweep files
    ("file-missing", ["sweep", "submit", "--file", "/nope/sweep.yaml"], {}, "does not exist"),
    ("file-not-yaml", ["sweep", "submit", "--file", "@:: [unclosed"], {}, "cannot be read"),
    ("file-list", ["sweep", "submit", "--file", "@- 1\n- 2\n"], {}, "expected a mapping"),
    ("file-unknown-key", ["sweep", "submit", "--file", f"@mixes: {M}\npresets: [fc12]\nepoch: 3\n"],
     {}, "unknown key(s) epoch"),
    ("file-no-mixes", ["sweep", "submit", "--file", "@presets: [fc12]\n"], {}, "missing 'mixes'"),
    ("file-mixes-missing", ["sweep", "submit", "--file", "@mixes: /nope/mixes\npresets: [fc12]\n"],
     {}, "/nope/mixes"),
    ("file-seeds-int", ["sweep", "submit", "--file", f"@mixes: {M}\npresets: [fc12]\nseeds: 3\n"],
     {}, "seeds must be a list of int"),
    ("file-seeds-negative", ["sweep", "submit", "--file",
                             f"@mixes: {M}\npresets: [fc12]\nseeds: [-1]\n"], {},
     "seeds must be non-negative"),
    ("file-epochs-negative", ["sweep", "submit", "--file",
                              f"@mixes: {M}\npresets: [fc12]\nepochs: -2\n"], {},
     "epochs must be a non-negative integer"),
    ("file-batch-zero", ["sweep", "submit", "--file",
                         f"@mixes: {M}\npresets: [fc12]\nbatch_size: 0\n"], {},
     "batch_size must be a positive integer"),
    ("file-lr-text", ["sweep", "submit", "--file", f"@mixes: {M}\npresets: [fc12]\nlr: fast\n"],
     {}, "lr must be a positive number"),
    ("file-mix-11", ["sweep", "submit", "--file",
                     f"@mixes: {M}\npresets: [fc12]\nmix_indices: [0, 11]\n"], {},
     "mix indices must be in 0..10"),
    ("file-nothing-to-run", ["sweep", "submit", "--file", f"@mixes: {M}\n"], {},
     "needs at least one preset or architecture"),
    ("file-unknown-preset", ["sweep", "submit", "--file", f"@mixes: {M}\npresets: [cnn1000]\n"],
     {}, "unknown preset 'cnn1000'"),
    ("file-long-name", ["sweep", "submit", "--file", f"@mixes: {M}\npresets: [fc12]\nname: "
                        + "x" * 201 + "\n"], {}, "name must be 1 to 200 characters"),
    # --- architecture specs
    ("spec-unknown-type", ["sweep", "submit", "--file",
                           f"@mixes: {M}\narchitectures: [[{{type: rnn, units: 3}}]]\n"], {},
     "architecture 0: layer 0: unknown type 'rnn'"),
    ("spec-collapses", ["sweep", "submit", "--file",
                        f"@mixes: {M}\narchitectures: [[{{type: conv, filters: 8, kernel: 40}}]]\n"
                        ],
     {}, "collapses to nothing"),
    ("spec-dropout", ["sweep", "submit", "--file",
                      f"@mixes: {M}\narchitectures: [[{{type: dropout, p: 1.5}}]]\n"], {},
     "p must be a number in [0, 1)"),
    ("spec-zero-units", ["sweep", "submit", "--file",
                         f"@mixes: {M}\narchitectures: [[{{type: fc, units: 0}}]]\n"], {},
     "units must be a positive integer"),
    ("spec-conv-after-fc", ["sweep", "submit", "--file", f"@mixes: {M}\narchitectures: "
                            "[[{type: fc, units: 8}, {type: conv, filters: 2, kernel: 3}]]\n"],
     {}, "conv after fc"),
    ("spec-not-list", ["sweep", "submit", "--file", f"@mixes: {M}\narchitectures: [5]\n"], {},
     "architectures must be a list of list"),
    ("spec-unknown-field", ["sweep", "submit", "--file",
                            f"@mixes: {M}\narchitectures: [[{{type: fc, units: 8, act: tanh}}]]\n"],
     {}, "unknown field(s) act"),
    # --- data files
    ("mixes-bad-manifest", ["sweep", "submit", *GOOD, "--mixes", "{root}/mixes-badmanifest"], {},
     "mixes.json"),
    ("npy-dtype", ["data", "mixes", "--from", "{root}/src-dtype", "--out", "{root}/o1",
                   "--convergent", "a,b,c,d,e,f,g,h,i,j", "--divergent", "k,l,m,n,o,p,q,r,s,t",
                   "--per-class", "10"], {}, "a.npy"),
    ("npy-width", ["data", "mixes", "--from", "{root}/src-width", "--out", "{root}/o2",
                   "--convergent", "a,b,c,d,e,f,g,h,i,j", "--divergent", "k,l,m,n,o,p,q,r,s,t",
                   "--per-class", "10"], {}, "a.npy"),
    ("npy-empty", ["data", "mixes", "--from", "{root}/src-empty", "--out", "{root}/o3",
                   "--convergent", "a,b,c,d,e,f,g,h,i,j", "--divergent", "k,l,m,n,o,p,q,r,s,t",
                   "--per-class", "10"], {}, "a.npy"),
    ("npy-truncated", ["data", "mixes", "--from", "{root}/src-truncated", "--out", "{root}/o4",
                       "--convergent", "a,b,c,d,e,f,g,h,i,j", "--divergent",
                       "k,l,m,n,o,p,q,r,s,t", "--per-class", "10"], {}, "a.npy"),
    ("source-missing", ["data", "mixes", "--from", "{root}/nowhere", "--out", "{root}/o5"], {},
     "nowhere"),
    ("nine-convergent", ["data", "mixes", "--from", "{root}/doodles", "--out", "{root}/o6",
                         "--convergent", "a,b,c,d,e,f,g,h,i", "--divergent",
                         "k,l,m,n,o,p,q,r,s,t", "--per-class", "10"], {}, "10"),
    ("unknown-class", ["data", "mixes", "--from", "{root}/doodles", "--out", "{root}/o7",
                       "--convergent", "a,b,c,d,e,f,g,h,i,zebra", "--divergent",
                       "k,l,m,n,o,p,q,r,s,t", "--per-class", "10"], {}, "zebra"),
    # --- command-line arguments
    ("epochs-negative", ["sweep", "submit", "--preset", "fc12", "--mixes", M, "--epochs", "-1"],
     {}, "--epochs"),
    ("seeds-text", ["sweep", "submit", "--preset", "fc12", "--mixes", M, "--seeds", "a"], {},
     "expected comma-separated integers"),
    ("mix-indices-text", ["sweep", "submit", "--preset", "fc12", "--mixes", M, "--mix-indices",
                          "3,x"], {}, "--mix-indices"),
    ("unknown-preset", ["sweep", "submit", "--preset", "fc99", "--mixes", M], {},
     "unknown preset 'fc99'"),
    ("results-format", ["results", "--format", "xml"], {}, "'xml' is not one of"),
    ("status-unknown-sweep", ["status", "nope"], {}, "no sweep 'nope'"),
    ("pause-unknown-sweep", ["sweep", "pause", "999"], {}, "no sweep '999'"),
    ("unknown-command", ["trian"], {}, "No such command 'trian'"),
    ("demo-per-class", ["demo", "--per-class", "3"], {}, "--per-class"),
    ("processes-zero", ["sweep", "run", "--preset", "fc12", "--mixes", M, "--processes", "0"],
     {}, "'--processes': 0 is not in the range"),
    # --- settings
    ("db-url", ["status"], {"FFQ_DATABASE_URL": "postgres//x"}, "FFQ_DATABASE_URL"),
    ("broker-url", ["sweep", "submit", *GOOD, "--mixes", M], {"FFQ_BROKER_URL": "kafka://x"},
     "FFQ_BROKER_URL: unsupported broker scheme 'kafka'"),
    ("lease-zero", ["status"], {"FFQ_LEASE_SECONDS": "0"}, "FFQ_LEASE_SECONDS"),
    ("attempts-text", ["status"], {"FFQ_MAX_ATTEMPTS": "many"}, "FFQ_MAX_ATTEMPTS"),
    ("checkpoint-negative", ["sweep", "run", *GOOD, "--mixes", M],
     {"FFQ_CHECKPOINT_SECONDS": "-1"}, "FFQ_CHECKPOINT_SECONDS: Input should be greater"),
    ("production-defaults", ["status"], {"FFQ_ENV": "production"},
     "FFQ_DATABASE_URL must name a PostgreSQL server in production"),
    ("device", ["status"], {"FFQ_DEVICE": "tpu"}, "FFQ_DEVICE: unknown device 'tpu'"),
]


@pytest.mark.parametrize(("args", "env", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(world, args, env, message):
    def fill(value: str) -> str:
        value = value.replace(M, str(world["mixes"])).replace("{root}", str(world["root"]))
        return sweep_file(world["root"], value[1:]) if value.startswith("@") else value

    before = database_dump(world["home"])
    result = ffqueue(*map(fill, args), env={"FFQ_HOME": str(world["home"]), **env}, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    # Progress and notes may come first; the error is the last line, one line, no traceback.
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], result.stderr
    assert "Traceback" not in result.stderr
    assert message.replace(M, str(world["mixes"])) in errors[0]
    assert database_dump(world["home"]) == before


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
