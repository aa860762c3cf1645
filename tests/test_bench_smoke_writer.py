"""The writer's throughput benchmark, run tiny (--smoke) on its own stack: its result file (tests/bench_smoke.py)."""

from pathlib import Path

import pytest
from bench_smoke import run_smoke


@pytest.mark.stack
def test_writer_throughput_smoke(tmp_path: Path) -> None:
    document = run_smoke("writer_throughput.py", tmp_path)
    assert document["name"] == "writer_throughput"
    assert {"cpu_model", "cores", "gpu"} <= set(document["machine"])
    assert document["params"]["smoke"] is True
    rows = document["rows"]
    assert {row["peer_name"] for row in rows} >= {"naive insert+commit per event", "raw COPY (ceiling)", "1 writer"}
    assert {row["unit"] for row in rows} == {"rows/s", "CPU-s / 1,000 rows"}
    for row in rows:
        if row["unit"] == "rows/s":
            assert row["better"] == "higher" and row["ours"] > 0 and row["peer"] > 0
            assert row["ratio"] == pytest.approx(row["ours"] / row["peer"], abs=1e-3)
        else:  # Postgres's CPU is counted in clock ticks: a smoke run's COPY may take less than one
            assert row["better"] == "lower" and row["ours"] > 0 and row["peer"] >= 0
    cpu = document["params"]["measured"]["empty"]["cpu_s_per_1000_rows"]
    assert set(cpu) == {"copy", "writers_1", "writers_2"}
