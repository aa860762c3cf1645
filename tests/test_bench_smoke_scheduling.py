"""The scheduling benchmark, run tiny (--smoke) on a fresh stack: its result file (tests/bench_smoke.py)."""

from pathlib import Path

import pytest
from bench_smoke import run_smoke
from tiny_model import tiny_catalog_file


@pytest.mark.stack
def test_scheduling_smoke(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The fixed trace played on a fresh stack (one repeat: a smoke run proves the benchmark works, not its figures);
    the peer is the ideal schedule of the same jobs."""
    models = tiny_catalog_file(tiny_model_dir, tmp_path / "models.json")
    document = run_smoke("scheduling.py", tmp_path / "results", timeout=900, models=models)
    assert document["name"] == "scheduling"
    assert len(document["repeats"]) == document["params"]["repeats"] == 1
    trace = [(arrival["at"], arrival["user"]) for arrival in document["trace"]]
    for repeat in document["repeats"]:
        assert [run["user"] for run in repeat["runs"]] == [user for _, user in trace]
        assert all(run["state"] == "completed" for run in repeat["runs"])
        assert repeat["load_average_1m"] >= 0 and repeat["ideal"]["makespan"] > 0
    for row in document["rows"]:
        assert row["peer_name"].startswith("ideal schedule") and row["ours"] > 0 and row["peer"] > 0
