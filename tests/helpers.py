"""Running the real ``ffqueue`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FFQ_")}


def ffqueue(*args: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ffqueue ARGS`` with only the given FFQ_* variables."""
    result = subprocess.run([sys.executable, "-m", "ffqueue", *args],
                            env={**CLEAN_ENV, **(env or {})}, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"ffqueue {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def stop(processes: Iterable[subprocess.Popen[Any]], timeout: float = 20) -> None:
    """SIGTERM (a worker's warm shutdown) to each process still running, then wait;
    kill whatever outlives ``timeout``."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ffqueue_json(*args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ffqueue(*args, "--format", "json", env=env).stdout)
