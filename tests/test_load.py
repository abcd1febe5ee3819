"""Many no-op runs through two real worker processes: every run done exactly once.

The 10,000-run version with timings is ``python bench/load.py`` (docs/benchmarks.md).
"""

import pytest

from bench.load import run_load
from tests.conftest import POSTGRES_URL


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_thousand_no_op_runs_each_done_once(redis_url):
    result = run_load(1100, 2, redis_url=redis_url, server_url=POSTGRES_URL, timeout=600)
    assert result["runs"] == 1100
    assert result["done"] == result["distinct_keys"] == 1100
    assert result["max_attempts"] == 1
