"""GPU workers: listing GPUs, parsing --gpus, the per-GPU environment (no GPU needed)."""

from __future__ import annotations

import sys

import pytest

from ffqueue.errors import ConfigError
from tests.helpers import ffqueue
from worker import gpus
from worker.gpus import gpu_environment, list_gpus, node_name, parse_gpus, worker_argv

SMI_OUTPUT = """GPU 0: NVIDIA H200 (UUID: GPU-0a1b)
GPU 1: NVIDIA H200 (UUID: GPU-2c3d)
  MIG 1g.18gb     Device  0: (UUID: MIG-77)
GPU 2: NVIDIA H200 (UUID: GPU-4e5f)
"""


def fake_smi(tmp_path, output=SMI_OUTPUT, code=0):
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_list_gpus_reads_nvidia_smi(tmp_path):
    assert list_gpus(fake_smi(tmp_path)) == ["0", "1", "2"]
    assert list_gpus(fake_smi(tmp_path, code=9)) == []  # driver present but broken
    assert list_gpus(str(tmp_path / "absent")) == []


@pytest.mark.parametrize(("value", "expected"), [("all", ["0", "1", "2"]), ("1", ["1"]),
                                                 ("2, 0", ["2", "0"]), (" ALL ", ["0", "1", "2"])])
def test_parse_gpus(value, expected):
    assert parse_gpus(value, ["0", "1", "2"]) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("0,x", "takes 'all' or GPU indices"), ("", "takes 'all'"), ("-1", "takes 'all'"),
    ("1,1", "lists a GPU twice"), ("3", "GPU 3 not found (nvidia-smi -L lists: 0, 1, 2)"),
])
def test_parse_gpus_rejects_bad_values(value, message):
    with pytest.raises(ConfigError) as info:
        parse_gpus(value, ["0", "1", "2"])
    assert message in str(info.value)


def test_no_gpu_means_all_is_empty_and_an_index_is_an_error():
    assert parse_gpus("all", []) == []
    with pytest.raises(ConfigError, match="lists: none"):
        parse_gpus("0", [])


def test_each_worker_sees_one_gpu_and_its_share_of_cores():
    env = gpu_environment({"PATH": "/bin", "FFQ_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "0,1"},
                          "1", threads=4)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["FFQ_DEVICE"] == "cuda"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and env["FFQ_TORCH_THREADS"] == "4"
    assert env["PATH"] == "/bin"
    assert gpu_environment({}, "0", threads=0)["FFQ_TORCH_THREADS"] == "1"


def test_worker_command_is_a_solo_single_process_worker():
    argv = worker_argv("1", queues="train", loglevel="INFO", hostname=None)
    assert argv[:4] == [sys.executable, "-m", "ffqueue", "worker"]
    assert argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("--hostname") + 1] == "celery-gpu1@%h"
    assert node_name("trainer@box", "0") == "trainer-gpu0@box"


def test_run_gpu_workers_starts_one_pinned_process_each(monkeypatch, tmp_path):
    # Stand-in workers that record what they were given, one of them failing.
    script = ("import os, sys; open(sys.argv[1] + os.environ['CUDA_VISIBLE_DEVICES'], 'w')"
              ".write(os.environ['FFQ_DEVICE'] + ' ' + os.environ['FFQ_TORCH_THREADS']);"
              " sys.exit(int(os.environ['CUDA_VISIBLE_DEVICES']))")
    monkeypatch.setattr(gpus, "worker_argv", lambda gpu, **_: [sys.executable, "-c", script,
                                                               str(tmp_path / "gpu")])
    code = gpus.run_gpu_workers(["0", "3"], queues="train", loglevel="INFO", hostname=None,
                                cores=8)
    assert code == 3
    assert (tmp_path / "gpu0").read_text() == "cuda 4"
    assert (tmp_path / "gpu3").read_text() == "cuda 4"


def test_all_without_gpu_falls_back_to_cpu_workers(monkeypatch, capsys):
    monkeypatch.setattr(gpus, "list_gpus", lambda: [])
    assert gpus.start_gpu_workers("all", queues="train", loglevel="INFO", hostname=None) is None
    assert "starting CPU workers instead" in capsys.readouterr().err


def test_cli_names_a_missing_gpu():
    result = ffqueue("worker", "--gpus", "99", check=False)
    assert result.returncode == 1
    assert "error: GPU 99 not found" in result.stderr
