"""Deployment files: the Procfile, the compose file and the two Dockerfiles.

No Docker engine runs in CI, so the files are checked as files: the compose file by
the compose-spec parser (after the variable interpolation Docker would do) and by
explicit checks of what docs/deploy.md promises; the Dockerfiles by hadolint and by
the same kind of explicit checks. Every command a process runs is parsed by the real
``ffqueue`` command line. Last, the multi-machine rule: a worker that sees different
data at the recorded path refuses to train on it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SECRETS = {"POSTGRES_PASSWORD": "pg-test-pw", "REDIS_PASSWORD": "redis-test-pw",
           "FLOWER_BASIC_AUTH": "ops:flower-test-pw"}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")
FFQUEUE_SERVICES = ["migrate", "worker", "cpu-worker", "beat", "flower", "cli"]


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's (and the shell's) ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ in strings."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1) or match.group(4), match.group(2), match.group(3)
        found = env.get(name)
        if operator in (":?", "?"):
            if found is None or (operator == ":?" and not found):
                raise MissingVariable(f"{name}: {argument}")
            return found
        if operator in (":-", "-"):
            return argument if found is None or (operator == ":-" and not found) else found
        return found or ""

    return VARIABLE.sub(substitute, value)


def compose_file(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker/compose.yaml as Docker sees it: anchors merged, variables interpolated."""
    raw = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return dict(interpolate(raw, SECRETS if env is None else env))


def cli_parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``ffqueue ARGS`` with the real command line, without running it."""
    from ffqueue.cli import cli

    command: click.Command = cli
    while isinstance(command, click.Group):
        assert args, "a command group needs a subcommand"
        assert args[0] in command.commands, f"ffqueue has no command {args[0]!r}"
        command, args = command.commands[args[0]], args[1:]
    context = command.make_context(str(command.name), list(args))
    return str(command.name), context.params


# ---------------------------------------------------------------- Procfile


def procfile() -> dict[str, str]:
    types: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)  # honcho's own rule
        if match:
            types[match.group(1)] = match.group(2)
    return types


def test_procfile_has_the_four_process_types_and_each_parses():
    types = procfile()
    assert list(types) == ["release", "worker", "beat", "flower"]
    parsed = {}
    for name, line in types.items():
        words = shlex.split(interpolate(line, {}))  # settings come from FFQ_* only
        assert words[0] == "ffqueue", line
        parsed[name] = cli_parse(words[1:])
    assert parsed["release"][0] == "upgrade"
    assert parsed["worker"] == ("worker", {**parsed["worker"][1], "concurrency": 1})
    assert parsed["beat"][0] == "beat" and parsed["flower"][0] == "flower"
    concurrency = interpolate(types["worker"], {"FFQ_WORKER_CONCURRENCY": "3"})
    assert cli_parse(shlex.split(concurrency)[1:])[1]["concurrency"] == 3


def secret_values(node: Any, key: str = "") -> list[str]:
    """Strings that hold a secret: values of *PASSWORD*/*AUTH*/*SECRET*/*TOKEN* keys, the
    argument after --requirepass, and the password part of URLs."""
    if isinstance(node, dict):
        return [v for k, item in node.items() for v in secret_values(item, str(k))]
    if isinstance(node, list):
        after = [node[i + 1] for i, item in enumerate(node[:-1]) if item == "--requirepass"]
        return after + [v for item in node for v in secret_values(item, key)]
    if not isinstance(node, str):
        return []
    found = re.findall(r"://[^:/@\s]*:(.+?)@[\w.-]+(?::\d+)?/", node)
    return found + ([node] if re.search(r"(?i)password|secret|token|auth", key) else [])


def test_procfile_and_compose_hold_no_secrets():
    raw = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    values = secret_values(raw)
    assert len(values) >= 16  # both URLs of the 6 ffqueue services, Redis, PostgreSQL, Flower
    assert all(value.startswith("${") for value in values), values
    assert secret_values({"x": ["redis://:hunter2@r/0"]}) == ["hunter2"]  # it would notice
    assert not re.search(r"(?i)password|://|auth", "".join(procfile().values()))


# ---------------------------------------------------------------- compose


def test_compose_file_passes_the_compose_spec_parser():
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(compose_file()))
    parsed._inner.validate()
    assert set(parsed.service_names()) == {"redis", "postgres", *FFQUEUE_SERVICES}


def test_compose_spec_parser_is_strict():
    """The check above can fail: a misspelt key or a bad condition is rejected."""
    from compose_spec import PyCompose

    for service, key, value in [("beat", "restartt", "no"),
                                ("worker", "depends_on", {"migrate": {"condition": "done"}}),
                                ("flower", "ports", ["127.0.0.1:x:y:z"])]:
        spec = compose_file()
        spec["services"][service][key] = value
        with pytest.raises(ValueError):
            PyCompose.from_json(json.dumps(spec))


def test_every_secret_must_come_from_the_environment():
    for name in SECRETS:
        with pytest.raises(MissingVariable, match=name):
            compose_file({k: v for k, v in SECRETS.items() if k != name})


def test_redis_has_a_password_append_only_no_eviction_and_no_published_port():
    redis = compose_file()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == SECRETS["REDIS_PASSWORD"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "ports" not in redis
    assert any(v.endswith(":/data") for v in redis["volumes"])  # the append-only file


def test_postgres_keeps_its_data_in_a_volume_and_publishes_no_port():
    spec = compose_file()
    postgres = spec["services"]["postgres"]
    volume = next(v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume.split(":")[0] in spec["volumes"]
    assert "ports" not in postgres
    assert postgres["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_migration_runs_once_before_every_worker_and_beat():
    services = compose_file()["services"]
    assert cli_parse(services["migrate"]["command"])[0] == "upgrade"
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "cpu-worker", "beat", "cli"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}, name


def test_workers_reserve_a_gpu_and_can_be_scaled():
    services = compose_file()["services"]
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    for name in ("worker", "cpu-worker"):
        # `--scale worker=N` needs no fixed name and no host port per container.
        assert "container_name" not in services[name] and "ports" not in services[name]
        assert cli_parse(services[name]["command"])[0] == "worker"
    assert services["cpu-worker"]["profiles"] == ["cpu"]


def test_exactly_one_beat():
    services = compose_file()["services"]
    beats = [n for n, s in services.items() if s.get("command", [None])[0] == "beat"]
    assert beats == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1


def test_flower_uses_basic_auth_from_the_environment_on_loopback_only():
    services = compose_file()["services"]
    flower = services["flower"]
    assert flower["environment"]["FFQ_FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert cli_parse(flower["command"]) == ("flower", {"address": "0.0.0.0", "port": 5555})
    assert flower["ports"] == ["127.0.0.1:5555:5555"]  # /metrics never on a public port
    published = [n for n, s in services.items() if "ports" in s]
    assert published == ["flower"]


def test_ffqueue_services_run_in_production_against_the_compose_servers():
    services = compose_file()["services"]
    for name in FFQUEUE_SERVICES:
        environment = services[name]["environment"]
        assert environment["FFQ_ENV"] == "production", name
        assert "@postgres:5432/" in environment["FFQ_DATABASE_URL"], name
        assert environment["FFQ_BROKER_URL"].endswith("@redis:6379/0"), name
        assert "/data" in " ".join(services[name]["volumes"]), name


def test_images_are_pinned():
    spec = compose_file()
    for name, service in spec["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest", name
        if "build" not in service:  # a public image: pinned to a version
            assert re.match(r"\d+\.\d+", tag), f"{name}: {image}"


# ---------------------------------------------------------------- Dockerfiles


def hadolint(dockerfile: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return subprocess.run([binary, "--no-color", "-"], input=dockerfile, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_passes_hadolint(name):
    result = hadolint((DOCKER / name).read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_find_problems():
    result = hadolint("FROM python:latest\nRUN pip install torch\nUSER root\n")
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3002" in result.stdout


def instructions(name: str) -> list[tuple[str, str]]:
    text = (DOCKER / name).read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(("name", "base"), [("Dockerfile", r"python:3\.\d+\.\d+-slim-"),
                                            ("Dockerfile.gpu", r"nvidia/cuda:12\.\d+\.\d+-"
                                                               r"(cudnn-)?runtime-")])
def test_dockerfile_is_pinned_non_root_and_secret_free(name, base):
    steps = instructions(name)
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 1 and re.match(base, froms[0]), froms
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert [op for op, _ in steps].index("USER") > max(
        i for i, (op, _) in enumerate(steps) if op == "RUN")  # nothing runs as root after
    for op, arg in steps:
        if op in {"ENV", "ARG"}:
            assert not re.search(r"(?i)password|secret|token|_URL=", arg), arg
    torch = [re.search(r"TORCH_VERSION=(\S+)", arg) for op, arg in steps if op == "ARG"]
    assert [m.group(1) for m in torch if m] == ["2.13.0"]
    assert ("ENTRYPOINT", '["ffqueue"]') in steps


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_copies_what_exists_and_its_ignore_file_lets_through(name):
    allowed = {line.strip("!/") for line in (DOCKER / f"{name}.dockerignore").read_text()
               .splitlines() if line.startswith("!")}
    for op, arg in instructions(name):
        if op == "COPY":
            *sources, _ = arg.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by the ignore file"


# ---------------------------------------------------------------- several machines


def test_worker_refuses_data_that_differs_from_what_the_run_recorded(settings, tiny_mixes,
                                                                     tmp_path):
    """Machine B has mixes at the recorded path, but built differently (another seed):
    the run fails at once, naming the hash, and nothing is trained or stored."""
    from sqlalchemy import select

    from ffqueue.data.doodles import CONVERGENT, DIVERGENT
    from ffqueue.data.mixes import build_mixes
    from ffqueue.db import session_scope
    from ffqueue.models import EpochMetric, Run, RunStatus
    from ffqueue.runner import execute_run
    from ffqueue.scheduler import submit
    from ffqueue.sweeps import TrainConfig, make_definition
    from tests.conftest import TINY_PER_CLASS

    shared = tmp_path / "shared-mixes"
    shutil.copytree(tiny_mixes, shared)
    definition = make_definition(name="two-machines", mixes_dir=shared, specs=[[]],
                                 mix_indices=[3], train=TrainConfig(epochs=1, batch_size=64))
    with session_scope(settings) as session:
        sweep_id = submit(definition, session=session).sweep_id
    # What machine B sees at the same path: a valid mix set of its own, other content.
    shutil.rmtree(shared)
    build_mixes(tiny_mixes.parent / "doodles", shared, CONVERGENT, DIVERGENT,
                per_class=TINY_PER_CLASS, seed=1)
    with session_scope(settings) as session:
        run_id = session.scalars(select(Run.id).where(Run.sweep_id == sweep_id)).one()
    outcome = execute_run(run_id, settings=settings, worker="machine-b:1")
    assert outcome.status == "failed"
    assert outcome.error and "content hash differs" in outcome.error
    with session_scope(settings) as session:
        run = session.get_one(Run, run_id)
        assert run.status == RunStatus.FAILED and run.test_accuracy is None
        assert not session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id)).all()
