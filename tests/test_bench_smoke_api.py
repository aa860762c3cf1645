"""The API's benchmarks (reads, freshness, upload, export), run tiny (--smoke) on their own stacks: their result
files (tests/bench_smoke.py)."""

from pathlib import Path

import pytest
from bench_smoke import run_smoke
from tiny_model import tiny_catalog_file


@pytest.mark.stack
def test_api_read_smoke(tmp_path: Path, tiny_model_dir: Path) -> None:
    results = tmp_path / "results"
    document = run_smoke("api_read.py", results, models=tiny_catalog_file(tiny_model_dir, tmp_path / "models.json"))
    assert document["name"] == "api_read"
    metrics = {row["metric"] for row in document["rows"]}
    for page in ("first page", f"page {document['params']['deep_page']:,}"):
        for clients in ("1 client", "10 clients", "50 clients"):
            assert {f"p50 {page}, {clients}", f"p99 {page}, {clients}", f"requests/s {page}, {clients}"} <= metrics
    assert all(row["ours"] > 0 and row["peer"] > 0 for row in document["rows"])
    assert all(row["load_average_1m"] >= 0 for row in document["rows"])  # each figure with the load it was taken at


@pytest.mark.stack
def test_freshness_smoke(tmp_path: Path, tiny_model_dir: Path) -> None:
    results = tmp_path / "results"
    document = run_smoke("freshness.py", results, models=tiny_catalog_file(tiny_model_dir, tmp_path / "models.json"))
    assert document["name"] == "freshness"
    assert document["params"]["rounds_measured"] == document["params"]["rounds"]
    metrics = {row["metric"] for row in document["rows"]}
    for what in ("rows visible through the API", "last prediction on the SSE stream", "round event on the SSE stream"):
        assert {f"round end -> {what}, p50", f"round end -> {what}, p99"} <= metrics
    for row in document["rows"]:
        assert row["unit"] == "ms" and row["better"] == "lower"
        assert row["ours"] > 0 and row["peer"] > 0


@pytest.mark.stack
def test_upload_smoke(tmp_path: Path) -> None:
    document = run_smoke("upload.py", tmp_path)
    assert document["name"] == "upload"
    assert document["params"]["smoke"] is True
    rows = {row["metric"]: row for row in document["rows"]}
    assert len(rows) == 4
    tokenizer_alone = [row for metric, row in rows.items() if metric.endswith("against the tokenizer alone")]
    assert [row["peer_name"] for row in tokenizer_alone] == [
        "the tiny model's tokenizer alone: encode_batch_fast of the same prompts and completions"
    ]
    for row in rows.values():
        assert row["peer_name"] == "raw obstore.put, same folder store" or row in tokenizer_alone
        assert row["load_average_1m"] >= 0
        assert row["ours"] > 0 and row["peer"] > 0
        assert row["better"] == ("higher" if row["unit"] == "MB/s" else "lower")
    assert set(document["tokens"]) == {"tiny"} and document["tokens"]["tiny"]["prompt_tokens"] > 0


@pytest.mark.stack
def test_export_smoke(tmp_path: Path, tiny_model_dir: Path) -> None:
    results = tmp_path / "results"
    document = run_smoke("export.py", results, models=tiny_catalog_file(tiny_model_dir, tmp_path / "models.json"))
    assert document["name"] == "export"
    rows = document["rows"]
    assert [row["metric"] for row in rows] == [
        f"API RSS growth vs the rows' size, {fmt}, 3,000 rows" for fmt in ("jsonl", "csv", "parquet")
    ]
    assert all(row["peer_name"] == "the rows as JSONL" and row["peer"] > 0 for row in rows)
    for fmt in ("jsonl", "csv", "parquet"):
        assert {"small", "large"} <= set(document["measured"][fmt])
