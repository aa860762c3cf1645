"""The checkpoint benchmarks, run tiny (--smoke) on their own stacks: their result files (tests/bench_smoke.py)."""

from pathlib import Path

import pytest
from bench_smoke import run_smoke
from tiny_model import tiny_catalog_file


@pytest.mark.stack
def test_checkpoint_download_smoke(tmp_path: Path) -> None:
    """Also the bound the issue asks for: the API's memory grows by far less than the checkpoint it streams (a
    checkpoint of about 22 MB, several times the few MiB of chunks a streamed download holds)."""
    document = run_smoke("checkpoint_download.py", tmp_path)
    assert document["name"] == "checkpoint_download"
    size_mib = document["params"]["checkpoint_bytes"] / (1 << 20)
    assert size_mib > 16
    for download in document["api_rss_mib"].values():
        assert download["growth"] < size_mib / 2, document["api_rss_mib"]
    rows = document["rows"]
    assert len(rows) == 4 and all(row["ours"] >= 0 and row["peer"] > 0 for row in rows)


@pytest.mark.stack
def test_checkpoint_stall_smoke(tmp_path: Path, tiny_model_dir: Path) -> None:
    """No row reports a background checkpoint's stall: its save runs beside training, and what that costs is
    prediction_round's whole-run figure, not a number the trainer fills in."""
    models = tiny_catalog_file(tiny_model_dir, tmp_path / "models.json")
    document = run_smoke("checkpoint_stall.py", tmp_path / "results", models=models)
    assert document["name"] == "checkpoint_stall"
    lines = document["per_checkpoint"]
    assert [(line["mode"], line["round"]) for line in lines] == [
        (mode, index) for mode in ("inline", "background") for index in (0, 1, 2, "final")
    ]
    for line in lines:
        assert line["checkpoint_bytes"] > 0 and line["save_ms"] > 0
    metrics = [row["metric"] for row in document["rows"]]
    assert metrics == [
        f"inline round {index}: training stall for its checkpoint (the local save)" for index in (0, 1, 2)
    ] + [
        f"background round {index}: training waited at the round's step (snapshot, and the previous round's"
        " thread with its checkpoint save)"
        for index in (0, 1, 2)
    ]
    assert all(row["ours"] > 0 and row["peer"] > 0 for row in document["rows"])
