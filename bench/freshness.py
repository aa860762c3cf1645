"""Freshness: how soon a prediction round that ended in the trainer can be seen, through the API and live.

One run on a fresh local stack (embedded Postgres, the Tansu broker, API, one writer, one trainer, as
`epochscope up` runs them, default settings but EPOCHSCOPE_PREDICTIONS_MIN_STEP_INTERVAL=1). One job
fine-tunes the tests' tiny Llama on the demo data, batch 1, with a prediction round every step (and
the baseline round). For every round, from its end in the trainer (the RoundSummaryEvent's
occurred_at, stamped after the round's predictions were handed to the publisher) to:

- (a) its rows visible through the API: a client polls GET /v1/jobs/{id}/predictions with the keyset
  cursor every POLL_S; the round counts as visible when its last row has come back;
- (b) its events on the SSE stream GET /v1/jobs/{id}/stream: the round's last `prediction` event, and
  its `round` event (the summary, which reaches the writer on the status topic).

There is no peer product; the reference is the writer's own write: the round's rows' created_at (the
writer's transaction start, now(); its commit follows by a few ms), so ours / peer says how much the
API or the stream adds on top of getting the rows into Postgres. All clocks are this machine's.

Usage: python bench/freshness.py [--smoke] [--results-dir DIR] [--models FILE]
"""

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from catalog_option import add_models_option, models_option
from common import RESULTS, ResultRow, percentile, print_table, write_results
from httpx_sse import aconnect_sse

from epochscope.local_stack import LocalStack
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel
from epochscope_writer.settings import WriterSettings

NAME = "freshness"
ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "demo" / "data" / "train.jsonl"
OWNER = "bench-freshness"
POLL_S = 0.02  # the polling client's pause between two empty pages
PAGE_LIMIT = 500
TARGET_P50_MS = 250.0
TARGET_P99_MS = 1000.0
PEER_NAME = "writer's write (rows' created_at)"


@dataclass(frozen=True)
class Size:
    rows: int  # demo rows trained on (batch 1: one step, and one round, per row and epoch)
    epochs: int
    samples: int  # prompts per round
    max_new_tokens: int
    timeout_s: float  # for the whole job, start-up included

    @property
    def rounds(self) -> int:
        return self.rows * self.epochs + 1  # and the baseline round


FULL = Size(rows=96, epochs=3, samples=8, max_new_tokens=16, timeout_s=1200)
SMOKE = Size(rows=10, epochs=1, samples=4, max_new_tokens=4, timeout_s=150)


@dataclass
class Arrivals:
    """When (time.time()) this client saw each round's rows and events; what the rows and summaries say."""

    expected: dict[int, int] = field(default_factory=dict)  # round -> predictions, from its summary
    ended: dict[int, float] = field(default_factory=dict)  # round -> summary occurred_at
    written: dict[int, float] = field(default_factory=lambda: defaultdict(float))  # round -> latest created_at
    polled: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # round -> row arrivals
    streamed: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # round -> row arrivals
    summary_streamed: dict[int, float] = field(default_factory=dict)  # round -> `round` event arrival

    def row(self, item: dict[str, Any], seen: dict[int, list[float]], now: float) -> None:
        index = item["round_index"]
        seen[index].append(now)
        self.written[index] = max(self.written[index], timestamp(item["created_at"]))


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def write_dataset(path: Path, rows: int) -> Path:
    lines = DEMO_DATA.read_text().splitlines()[:rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def job_config(model_id: str, dataset_id: str, size: Size) -> dict[str, Any]:
    return {
        "model": model_id,
        "dataset_id": dataset_id,
        "num_epochs": size.epochs,
        "batch_size": 1,
        "learning_rate": 1e-3,
        "max_length": 256,  # the demo rows' answers come after ~100 tiny-tokenizer tokens: all of each row trains
        "predictions": {
            "enabled": True,
            "sample_count": size.samples,
            "sample_frequency": "steps",
            "step_interval": 1,
            "max_new_tokens": size.max_new_tokens,
        },
    }


async def stream(client: httpx.AsyncClient, job_id: str, arrivals: Arrivals) -> str:
    """Read the job's live stream from its start to its `end` event; return the final status."""
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/stream", timeout=None) as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            now = time.time()
            if event.event == "prediction":
                arrivals.row(json.loads(event.data), arrivals.streamed, now)
            elif event.event == "round":
                summary = json.loads(event.data)
                index = summary["round_index"]
                arrivals.summary_streamed[index] = now
                arrivals.ended[index] = timestamp(summary["occurred_at"])
                arrivals.expected[index] = summary["predictions"]
            elif event.event == "end":
                return event.data
    raise RuntimeError("the stream closed before its end event")


async def poll(client: httpx.AsyncClient, job_id: str, arrivals: Arrivals, total: asyncio.Future[int]) -> None:
    """Page through the job's predictions as they are stored, until `total` rows (known at the end) came back."""
    cursor: str | None = None
    seen = 0
    while not (total.done() and seen >= total.result()):
        params: dict[str, Any] = {"limit": PAGE_LIMIT} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/jobs/{job_id}/predictions", params=params)
        response.raise_for_status()
        now = time.time()
        page = response.json()
        for item in page["items"]:
            arrivals.row(item, arrivals.polled, now)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            await asyncio.sleep(POLL_S)


async def measure(stack: LocalStack, model_id: str, dataset: Path, size: Size) -> Arrivals:
    arrivals = Arrivals()
    headers = {"Authorization": f"Bearer {stack.mint_token(OWNER)}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        uploaded = await client.post("/v1/datasets", files={"file": (dataset.name, dataset.read_bytes())})
        uploaded.raise_for_status()
        created = await client.post("/v1/jobs", json=job_config(model_id, uploaded.json()["dataset_id"], size))
        created.raise_for_status()
        job_id = created.json()["job_id"]
        total: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        poller = asyncio.create_task(poll(client, job_id, arrivals, total))
        status = await asyncio.wait_for(stream(client, job_id, arrivals), size.timeout_s)
        if status != "completed":
            raise RuntimeError(f"the job ended {status}; see the logs under {stack.logs}")
        total.set_result(sum(len(rows) for rows in arrivals.streamed.values()))
        await asyncio.wait_for(poller, 60)
    return arrivals


def latencies(arrivals: Arrivals) -> dict[str, list[float]]:
    """ms from each round's end to: its rows written, visible through the API, streamed; its summary streamed."""
    rounds = sorted(arrivals.ended)
    for index in rounds:
        expected = arrivals.expected[index]
        for name, seen in (("polled", arrivals.polled), ("streamed", arrivals.streamed)):
            if len(seen[index]) != expected:
                raise RuntimeError(f"round {index}: {len(seen[index])} rows {name}, expected {expected}")

    def since_end(times: dict[int, float]) -> list[float]:
        return [(times[index] - arrivals.ended[index]) * 1000 for index in rounds]

    return {
        "written": since_end(arrivals.written),
        "api": since_end({index: max(arrivals.polled[index]) for index in rounds}),
        "sse_predictions": since_end({index: max(arrivals.streamed[index]) for index in rounds}),
        "sse_round": since_end(arrivals.summary_streamed),
    }


def run(size: Size, results_dir: Path, catalog: list[CatalogModel] | None = None) -> Path:
    """On `catalog`'s first model (default: the tests' tiny model, built here)."""
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    if catalog is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import build_tiny_model, tiny_catalog

        catalog = tiny_catalog(build_tiny_model(root / "model"))
    stack = LocalStack(root / "stack", extra_env={"EPOCHSCOPE_PREDICTIONS_MIN_STEP_INTERVAL": "1"}, models=catalog)
    try:
        dataset = write_dataset(root / "train.jsonl", size.rows)
        with stack:
            arrivals = asyncio.run(measure(stack, catalog[0].id, dataset, size))
    finally:
        stack.delete_data()
        shutil.rmtree(root, ignore_errors=True)
    measured = latencies(arrivals)
    written = measured["written"]
    rows = []
    for key, what in (
        ("api", "rows visible through the API"),
        ("sse_predictions", "last prediction on the SSE stream"),
        ("sse_round", "round event on the SSE stream"),
    ):
        for q in (50, 99):
            rows.append(
                ResultRow(
                    f"round end -> {what}, p{q}", "ms", percentile(measured[key], q), percentile(written, q), PEER_NAME
                )
            )
    stats = {
        key: {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values), "n": len(values)}
        for key, values in measured.items()
    }
    params = {
        **asdict(size),
        "rounds": size.rounds,
        "rounds_measured": len(written),
        "model": "tests/tiny_model.py (2-layer Llama)",
        "poll_interval_s": POLL_S,
        "writer_linger_ms": WriterSettings.model_fields["writer_linger_ms"].default,
        "api_stream_poll_seconds": ApiSettings.model_fields["stream_poll_seconds"].default,
    }
    print_table(f"{NAME} ({len(written)} rounds)", rows)
    return write_results(
        NAME,
        params,
        rows,
        results_dir,
        targets={"p50_ms": f"<= {TARGET_P50_MS:g}", "p99_ms": f"<= {TARGET_P99_MS:g}"},
        latencies_ms=stats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run (about 11 rounds)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    add_models_option(parser, "the tests' tiny model, built for the run")
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir, models_option(args)))


if __name__ == "__main__":
    main()
