"""Security properties that must hold on the real broker and on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import CLEAN_ENV, ffqueue, ffqueue_json


@pytest.mark.redis
def test_a_pickle_message_is_refused_by_the_worker(tmp_path, tiny_mixes, redis_url):
    home = {"FFQ_HOME": str(tmp_path / "home")}
    ffqueue("db", "upgrade", env=home)
    # Submitted through the local folder queue, so Redis holds only what we send below.
    ffqueue("sweep", "submit", "--preset", "fc12", "--mixes", str(tiny_mixes), "--epochs", "1",
            "--mix-indices", "0,1", env=home)
    env = {**home, "FFQ_BROKER_URL": redis_url, "FFQ_TORCH_THREADS": "1"}
    send = ("from ffqueue.tasks import train_run; "
            "train_run.apply_async(kwargs={'run_id': 1}, serializer='pickle'); "
            "train_run.apply_async(kwargs={'run_id': 2})")
    subprocess.run([sys.executable, "-c", send], env={**CLEAN_ENV, **env}, check=True, timeout=60)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "ffqueue", "worker", "-l", "INFO"],
                                  env={**CLEAN_ENV, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = {r["run"]: r["status"] for r in ffqueue_json("results", env=home)}
            if runs[2] == "done":
                break
            time.sleep(0.5)
        time.sleep(1)  # the pickled message was first in line: it has been seen by now
        runs = {r["run"]: r["status"] for r in ffqueue_json("results", env=home)}
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert runs[2] == "done"
    assert runs[1] == "queued"  # never executed
    assert "untrusted content of type pickle" in log.read_text()


def test_weights_load_only_tensors(tmp_path):
    from worker.train import load_weights

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"0.weight": torch.zeros(2), "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"Weights only load failed|Unsupported global"):
        load_weights(tmp_path / "evil.pt")


def test_config_json_never_prints_passwords():
    env = {"FFQ_DATABASE_URL": "postgresql+psycopg://u:pa55@h/db",
           "FFQ_BROKER_URL": "redis://:r3d1s@h:6379/0", "FFQ_FLOWER_BASIC_AUTH": "admin:fl0wer"}
    text = ffqueue("config", "--format", "json", env=env).stdout
    assert not {"pa55", "r3d1s", "fl0wer"} & set(json.dumps(json.loads(text)).replace('"', " ")
                                                 .replace(":", " ").replace("@", " ").split())
    assert "pa55" not in text and "r3d1s" not in text and "fl0wer" not in text
