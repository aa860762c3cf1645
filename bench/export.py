"""Memory of a predictions export: the API's resident memory while it streams 100,000 predictions.

One run on a fresh local stack (embedded Postgres; the API as its own process with one worker, as `epochscope up`
runs it; no writer or trainer). Two jobs are inserted directly as the administrator, with predictions the size of
real ones, each with three graders' grades: a small one (1,000 rows) and a large one (100,000 rows). Each format
(jsonl, csv, parquet) of each job is downloaded through GET /v1/jobs/{id}/predictions/export while a thread reads
the API process's VmRSS every 5 ms.

Rows, per format: the API's RSS growth during the large export against the rows' size as JSONL (a ratio far below
1: rows are never all held; Parquet holds one row group, at most 5,000 rows or 4 MiB of text). The small job's
export is no peer (it is the same code on less work): its peak and rate are kept in `measured`, beside the large
one's, to show memory flat in the row count, and make no row.
Writes bench/results/export.json.
Usage: python bench/export.py [--smoke] [--results-dir DIR] [--models FILE]
"""

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from catalog_option import add_models_option, models_option
from common import RESULTS, print_table, write_results
from memory import RssSampler
from seeding import PREDICTION_COLUMNS, insert_completed_job

from epochscope.local_stack import LocalStack
from epochscope_runtime.catalog import CatalogModel

NAME = "export"
OWNER = "bench-exporter"
FORMATS = ("jsonl", "csv", "parquet")
GRADERS = {"json": "json_parse", "city": "json_field", "chrf": "text_similarity"}
MIB = 1 << 20


def rows_of(job_id: uuid.UUID, start: int, count: int, samples: int = 50) -> list[tuple[Any, ...]]:
    """Predictions start..start+count: prompts, truths and 64-token answers of real size, scores, three grades."""
    now = datetime.now(UTC)
    out = []
    for n in range(start, start + count):
        round_index, index = divmod(n, samples)
        grades = {
            "json": {"score": 1.0, "passed": True, "error": None},
            "city": {"score": float(n % 2), "passed": n % 2 == 1, "error": None if n % 2 else "booking.city differs"},
            "chrf": {"score": 0.61, "passed": True, "error": None},
        }
        out.append(
            (
                *(job_id, round_index * 10, f"row-{index:06d}", OWNER, round_index, float(round_index), index),
                f"Question {index}: " + "Book a room for the guest described here. " * 4,
                '{"booking": {"city": "Paris", "nights": 3}}',
                f"Round {round_index}, answer {index}: " + "the model's attempt at a booking. " * 6,
                *(64, 120.5, n % 3 != 0, None if n % 3 else "not JSON", float(n % 2), 0.5, 0.4),
                json.dumps(grades),
                *(uuid.uuid4(), now),
            )
        )
    return out


async def seed(admin_url: str, count: int) -> uuid.UUID:
    job_id = uuid.uuid4()
    config = {
        "model": "bench",
        "dataset_id": str(uuid.uuid4()),
        "predictions": {
            "enabled": True,
            "graders": [
                {"type": kind, "name": name} | extra
                for (name, kind), extra in zip(
                    GRADERS.items(), ({}, {"path": "booking.city"}, {"metric": "chrf"}), strict=True
                )
            ],
        },
    }
    conn = await asyncpg.connect(admin_url)
    try:
        await insert_completed_job(conn, job_id, OWNER, config)
        columns = [*PREDICTION_COLUMNS, "grades", "event_id", "occurred_at"]
        for start in range(0, count, 20_000):
            batch = rows_of(job_id, start, min(20_000, count - start))
            await conn.copy_records_to_table("training_predictions", records=batch, columns=columns)
    finally:
        await conn.close()
    return job_id


def export_peak(stack: LocalStack, pid: int, job_id: uuid.UUID, fmt: str, token: str) -> dict[str, float]:
    """Download one export while sampling the API's RSS; its bytes, rows/s and the RSS before and at peak."""
    sampler = RssSampler(pid, interval_s=0.005)
    sampler.start()
    size = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET",
        f"{stack.api_url}/v1/jobs/{job_id}/predictions/export",
        params={"format": fmt},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
    elapsed = time.perf_counter() - started
    peak_kib = sampler.stop()
    return {"before": sampler.before_kib * 1024, "peak": peak_kib * 1024, "bytes": size, "seconds": elapsed}


def run(large: int, small: int, results_dir: Path, catalog: list[CatalogModel] | None = None) -> Path:
    """`catalog`: what the stack's API offers (default: the demo model); no job of it runs here."""
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    stack = LocalStack(root, writers=0, trainers=0, extra_env={"EPOCHSCOPE_API_WORKERS": "1"}, models=catalog)
    try:
        with stack:
            small_job = asyncio.run(seed(stack.postgres.admin_url, small))
            large_job = asyncio.run(seed(stack.postgres.admin_url, large))
            process = stack.service("api").process
            assert process is not None
            token = stack.mint_token(OWNER)
            export_peak(stack, process.pid, small_job, "jsonl", token)  # warm-up: imports, pools, code paths
            rows, measured = [], {}
            for fmt in FORMATS:
                low = export_peak(stack, process.pid, small_job, fmt, token)
                high = export_peak(stack, process.pid, large_job, fmt, token)
                measured[fmt] = {"small": low, "large": high}
                data_bytes = measured["jsonl"]["large"]["bytes"]  # the rows' volume, uncompressed
                rows.append(
                    {
                        "metric": f"API RSS growth vs the rows' size, {fmt}, {large:,} rows",
                        "unit": "MiB",
                        "ours": round(max(high["peak"] - high["before"], 0) / MIB, 3),
                        "peer": round(data_bytes / MIB, 3),
                        "peer_name": "the rows as JSONL",
                        "better": "lower",
                    }
                )
    finally:
        stack.delete_data()
    print_table(f"export: API memory while streaming {large:,} predictions", rows)
    return write_results(
        NAME, {"large_rows": large, "small_rows": small, "graders": 3}, rows, results_dir, measured=measured
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    add_models_option(parser, "the demo model")
    args = parser.parse_args()
    large, small = (3_000, 300) if args.smoke else (100_000, 1_000)
    print(run(large, small, args.results_dir, models_option(args)))


if __name__ == "__main__":
    main()
