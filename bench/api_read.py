"""Read latency of one 50-row predictions page: through the API, and the same SQL straight through asyncpg.

One run on a fresh local stack (embedded Postgres; the API as its own process, as `epochscope up`
runs it; no writer or trainer), one job holding ~60,000 predictions inserted directly. For 1, 10
and 50 concurrent clients, the first page and page 1,000 (keyset cursor):

- ours: GET /v1/jobs/{job_id}/predictions?limit=50 over keep-alive HTTP/1.1, from a minimal client
  so that the load generator itself costs little;
- peer: what the API asks of Postgres for that page, through asyncpg, as the API's role, with a pool
  as large as the API's (all workers'): a transaction that sets the RLS user and runs the page query (which also
  checks that the job is the user's).

Reports p50/p99 latency and requests/s per case; writes bench/results/api_read.json.
Usage: python bench/api_read.py [--smoke] [--api-workers N] [--results-dir DIR] [--models FILE]
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from catalog_option import add_models_option, models_option
from common import RESULTS, percentile, print_table, write_results
from cpu import cpu_seconds
from seeding import PREDICTION_COLUMNS, insert_completed_job

from epochscope.local_stack import LocalStack
from epochscope_api.data.cursor import encode_cursor
from epochscope_api.data.db import create_pool, user_transaction
from epochscope_api.data.predictions import PREDICTION_PAGE_SQL
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel

NAME = "api_read"
OWNER = "bench-reader"
PAGE_SIZE = 50
PAGE_MAX_BYTES = ApiSettings.model_fields["page_max_bytes"].default  # as the API bounds its pages
CONCURRENCY = (1, 10, 50)
PEER_NAME = "asyncpg, same SQL"
TARGET_P99_MS_AT_50 = 25.0
TARGET_DEEP_OVER_FIRST = 1.5


@dataclass(frozen=True)
class Size:
    samples_per_round: int
    rounds: int
    deep_page: int  # 1-based page number of the deep page
    warmup_s: float
    duration_s: float

    @property
    def rows(self) -> int:
        return self.samples_per_round * self.rounds


FULL = Size(samples_per_round=50, rounds=1_200, deep_page=1_000, warmup_s=1.0, duration_s=5.0)
SMOKE = Size(samples_per_round=50, rounds=21, deep_page=20, warmup_s=0.1, duration_s=0.3)


@dataclass(frozen=True)
class Page:
    name: str
    after: tuple[int, str]  # the keyset key it starts after
    path: str


@dataclass(frozen=True)
class Measurement:
    latencies_ms: list[float]
    duration_s: float
    requests: int  # all sent, warm-up included
    cpu_ms: float = 0.0  # CPU time of the side under test (the API process, or this client's asyncpg) per request

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.duration_s


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends a prepared GET and reads a Content-Length body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "HttpConnection":
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def prediction_rows(job_id: uuid.UUID, size: Size) -> list[tuple[Any, ...]]:
    """Predictions the size of real ones: a prompt, a ground truth, a 64-token answer, scores."""
    now = datetime.now(UTC)
    rows = []
    for round_index in range(size.rounds):
        step = round_index * 10
        for index in range(size.samples_per_round):
            prompt = f"Question {index}: " + "Summarize the following passage in one sentence. " * 4
            truth = f"Reference answer {index}, " + "the passage says what it says. " * 3
            answer = f"Round {round_index}, answer {index}: " + "the model's attempt at a summary. " * 6
            rows.append(
                (
                    *(job_id, step, f"sample-{index:05d}", OWNER, round_index, step / 100, index),
                    *(prompt, truth, answer, 64, 120.5, index % 3 != 0, None if index % 3 else "not JSON"),
                    *(float(index % 2), 0.5, 0.4, uuid.uuid4(), now),
                )
            )
    return rows


async def seed(admin_url: str, size: Size) -> tuple[uuid.UUID, tuple[int, str]]:
    """One job with `size.rows` predictions; returns (job id, the keyset key the deep page starts after)."""
    job_id = uuid.uuid4()
    conn = await asyncpg.connect(admin_url)
    try:
        await insert_completed_job(conn, job_id, OWNER, {"model": "bench", "dataset_id": str(uuid.uuid4())})
        columns = [*PREDICTION_COLUMNS, "event_id", "occurred_at"]
        await conn.copy_records_to_table("training_predictions", records=prediction_rows(job_id, size), columns=columns)
        await conn.execute("ANALYZE training_predictions")
        before = await conn.fetchrow(  # the last row of the page before the deep one
            "SELECT step, sample_id FROM training_predictions WHERE job_id = $1 ORDER BY step, sample_id"
            " OFFSET $2 LIMIT 1",
            job_id,
            (size.deep_page - 1) * PAGE_SIZE - 1,
        )
    finally:
        await conn.close()
    return job_id, (before["step"], before["sample_id"])


def row(metric: str, unit: str, ours: float, peer: float, load: float | None = None) -> dict[str, Any]:
    """A result row; `load`: the machine's 1-minute load when its two measurements ended."""
    fields = {"metric": metric, "unit": unit, "ours": round(ours, 3), "peer": round(peer, 3), "peer_name": PEER_NAME}
    return fields | ({"load_average_1m": round(load, 2)} if load is not None else {})


async def measure(request: Callable[[int], Awaitable[None]], clients: int, size: Size) -> Measurement:
    """Each client sends requests back to back; latencies of those started after the warm-up, for duration_s
    (and at least two per client, so a slow machine still yields percentiles)."""
    latencies: list[float] = []
    sent = [0]  # every request, warm-up included: what the CPU time of the whole measurement is divided by
    start = time.perf_counter()
    measure_from = start + size.warmup_s
    end = measure_from + size.duration_s

    async def client(index: int) -> None:
        measured = 0
        while (began := time.perf_counter()) < end or measured < 2:
            await request(index)
            sent[0] += 1
            if began >= measure_from:
                latencies.append((time.perf_counter() - began) * 1000)
                measured += 1

    await asyncio.gather(*(client(index) for index in range(clients)))
    return Measurement(latencies, time.perf_counter() - measure_from, sent[0])


@asynccontextmanager
async def http_connections(host: str, port: int, count: int) -> AsyncIterator[list[HttpConnection]]:
    """Fresh connections for one measurement (the server closes keep-alive connections left idle)."""
    connections = [await HttpConnection.open(host, port) for _ in range(count)]
    try:
        yield connections
    finally:
        for connection in connections:
            await connection.close()


async def measure_api(host: str, port: int, api_pid: int, request: bytes, clients: int, size: Size) -> Measurement:
    async with http_connections(host, port, clients) as connections:

        async def one(index: int) -> None:
            status, _ = await connections[index].get(request)
            if status != 200:
                raise RuntimeError(f"the API answered {status}")

        return await with_cpu(lambda: measure(one, clients, size), lambda: cpu_seconds(api_pid))


async def with_cpu(run: Callable[[], Awaitable[Measurement]], cpu: Callable[[], float]) -> Measurement:
    """The measurement, with the CPU time `cpu` reports over the whole of it (warm-up included) per request."""
    before = cpu()
    measurement = await run()
    per_request_ms = (cpu() - before) * 1000 / measurement.requests
    return Measurement(measurement.latencies_ms, measurement.duration_s, measurement.requests, per_request_ms)


async def measure_sql(
    pool: asyncpg.Pool, job_id: uuid.UUID, after: tuple[int, str], clients: int, size: Size
) -> Measurement:
    async def one(_: int) -> None:
        async with user_transaction(pool, OWNER) as conn:
            await conn.fetch(PREDICTION_PAGE_SQL, job_id, *after, None, None, PAGE_SIZE + 1, PAGE_MAX_BYTES, None)

    return await with_cpu(lambda: measure(one, clients, size), time.process_time)


def run(size: Size, api_workers: int, results_dir: Path, catalog: list[CatalogModel] | None = None) -> Path:
    """`catalog`: what the stack's API offers (default: the demo model); no job of it runs here."""
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    env = {"EPOCHSCOPE_API_WORKERS": str(api_workers)}
    stack = LocalStack(root, writers=0, trainers=0, extra_env=env, models=catalog)
    try:
        with stack:
            return asyncio.run(bench(stack, size, api_workers, results_dir))
    finally:
        stack.delete_data()


async def bench(stack: LocalStack, size: Size, api_workers: int, results_dir: Path) -> Path:
    job_id, deep_key = await seed(stack.postgres.admin_url, size)
    # The API's database connections: a pool per worker.
    pool_size = ApiSettings.model_fields["db_pool_max"].default * api_workers
    pool = await create_pool(stack.api_database_url, pool_size, pool_size)
    token = stack.mint_token(OWNER)
    path = f"/v1/jobs/{job_id}/predictions?limit={PAGE_SIZE}"
    pages = (
        Page("first page", (-1, ""), path),
        Page(f"page {size.deep_page:,}", deep_key, f"{path}&cursor={encode_cursor(list(deep_key))}"),
    )
    host, port = "127.0.0.1", stack.api_port
    api_process = stack.service("api").process
    assert api_process is not None
    api_pid = api_process.pid
    rows: list[dict[str, Any]] = []
    p99_at_most: list[tuple[float, float]] = []  # (ours, peer) per page, at the highest concurrency
    try:
        for page in pages:
            request = f"GET {page.path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
            request_bytes = request.encode()
            # Both sides return the same rows before anything is timed.
            async with http_connections(host, port, 1) as (connection,):
                status, body = await connection.get(request_bytes)
            api_keys = [(item["step"], item["sample_id"]) for item in json.loads(body)["items"]]
            async with user_transaction(pool, OWNER) as conn:
                sql_rows = await conn.fetch(
                    PREDICTION_PAGE_SQL, job_id, *page.after, None, None, PAGE_SIZE, PAGE_MAX_BYTES, None
                )
            if status != 200 or api_keys != [(r["step"], r["sample_id"]) for r in sql_rows]:
                raise RuntimeError(f"the API and the SQL disagree on the {page.name}")

            for clients in CONCURRENCY:
                api = await measure_api(host, port, api_pid, request_bytes, clients, size)
                sql = await measure_sql(pool, job_id, page.after, clients, size)
                case = f"{page.name}, {clients} client{'s' if clients > 1 else ''}"
                load = os.getloadavg()[0]
                rows += [
                    row(f"p50 {case}", "ms", api.p50, sql.p50, load),
                    row(f"p99 {case}", "ms", api.p99, sql.p99, load),
                    row(f"requests/s {case}", "req/s", api.per_second, sql.per_second, load),
                    row(f"CPU per request {case}", "ms", api.cpu_ms, sql.cpu_ms, load) | {"better": "lower"},
                ]
                if clients == max(CONCURRENCY):
                    p99_at_most.append((api.p99, sql.p99))
    finally:
        await pool.close()
    (first, first_peer), (deep, deep_peer) = p99_at_most
    loads = [row["load_average_1m"] for row in rows]
    most = max(CONCURRENCY)
    rows.append(
        row(
            f"p99 deep page / first page, {most} clients", "x", deep / first, deep_peer / first_peer, os.getloadavg()[0]
        )
        | {"better": "lower"}
    )
    params = {
        "rows": size.rows,
        "page_size": PAGE_SIZE,
        "deep_page": size.deep_page,
        "concurrency": list(CONCURRENCY),
        "warmup_s": size.warmup_s,
        "duration_s": size.duration_s,
        "db_pool": pool_size,
        "api_workers": api_workers,
    }
    notes = [
        f"p99 at {most} clients: first page {first:.1f} ms, deep page {deep:.1f} ms"
        f" (target <= {TARGET_P99_MS_AT_50:g} ms: {'met' if max(first, deep) <= TARGET_P99_MS_AT_50 else 'missed'})",
        f"deep / first page p99 at {most} clients: {deep / first:.2f}x"
        f" (target <= {TARGET_DEEP_OVER_FIRST:g}x: {'met' if deep / first <= TARGET_DEEP_OVER_FIRST else 'missed'})",
        f"1-minute load while measured: {min(loads):.1f} to {max(loads):.1f} (each row's in its load_average_1m)",
    ]
    print_table(f"Predictions page, {PAGE_SIZE} rows of {size.rows:,}: API vs {PEER_NAME}", rows, "; ".join(notes))
    targets = {"p99_ms_at_50_clients": TARGET_P99_MS_AT_50, "deep_over_first_p99": TARGET_DEEP_OVER_FIRST}
    path = write_results(NAME, params, rows, results_dir, targets=targets, notes=notes)
    print(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that the benchmark works")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes of the API")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    add_models_option(parser, "the demo model")
    args = parser.parse_args()
    run(SMOKE if args.smoke else FULL, args.api_workers, args.results_dir, models_option(args))


if __name__ == "__main__":
    main()
