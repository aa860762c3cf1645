"""Every benchmark, run tiny (--smoke): it still starts, measures both sides and writes its results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_smoke(script: str, results_dir: Path) -> dict:
    """Run bench/<script> --smoke into `results_dir`; return the JSON document it wrote."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", "--results-dir", str(results_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = results_dir.glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.stack
def test_api_read_smoke(tmp_path: Path) -> None:
    document = run_smoke("api_read.py", tmp_path)
    assert document["name"] == "api_read"
    metrics = {row["metric"] for row in document["rows"]}
    for page in ("first page", f"page {document['params']['deep_page']:,}"):
        for clients in ("1 client", "10 clients", "50 clients"):
            assert {f"p50 {page}, {clients}", f"p99 {page}, {clients}", f"requests/s {page}, {clients}"} <= metrics
    assert all(row["ours"] > 0 and row["peer"] > 0 for row in document["rows"])
