"""Export encoders: rows in, bytes out, a bounded batch at a time, whatever the number of rows. What a row looks
like is its `ExportShape`: predictions' here, GRPO rollouts' in rollout_rows.py.

Prediction JSONL lines are the API's prediction rows (as GET /v1/jobs/{id}/predictions returns them) with `job_id`
and `job_name`. CSV and Parquet are flat: the scores as columns and each grader as `grade.<name>.score`,
`grade.<name>.passed` and `grade.<name>.error`; `truncated` is a JSON list. Parquet is written in row groups of at
most ROW_GROUP_ROWS rows or ROW_GROUP_BYTES of text, each sent as soon as it is written.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from epochscope_api.data.predictions import _prediction_fields as prediction_fields
from epochscope_api.response_models import Prediction

CHUNK_BYTES = 256 * 1024
ROW_GROUP_ROWS = 5_000
ROW_GROUP_BYTES = 4 << 20


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


MEDIA_TYPES = {
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}

_TEXT = pa.string()
BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("job_id", _TEXT),
    ("job_name", _TEXT),
    ("round_index", pa.int32()),
    ("epoch", pa.float64()),
    ("step", pa.int32()),
    ("sample_id", _TEXT),
    ("sample_index", pa.int32()),
    ("prompt", _TEXT),
    ("ground_truth", _TEXT),
    ("prediction", _TEXT),
    ("tokens_generated", pa.int32()),
    ("latency_ms", pa.float64()),
    ("valid", pa.bool_()),
    ("validation_error", _TEXT),
    ("exact_match", pa.float64()),
    ("f1", pa.float64()),
    ("rouge_l", pa.float64()),
    ("truncated", _TEXT),
    ("created_at", pa.timestamp("us", tz="UTC")),
]
_GRADE_PARTS: list[tuple[str, pa.DataType]] = [("score", pa.float64()), ("passed", pa.bool_()), ("error", _TEXT)]


def flat_columns(graders: list[str]) -> list[tuple[str, pa.DataType]]:
    """The columns of a CSV or Parquet export: the base columns, then three per grader."""
    return BASE_COLUMNS + [(f"grade.{name}.{part}", kind) for name in graders for part, kind in _GRADE_PARTS]


def flat_row(row: asyncpg.Record, graders: list[str]) -> list[Any]:
    """A prediction row as the values of flat_columns (missing grades are nulls)."""
    values = [str(row["job_id"]), *(row[name] for name, _ in BASE_COLUMNS[1:17])]
    values += [json.dumps(row["truncated"]), row["created_at"]]
    grades = row["grades"] or {}
    for name in graders:
        grade = grades.get(name) or {}
        values += [grade.get(part) for part, _ in _GRADE_PARTS]
    return values


class ExportShape(Protocol):
    """What the rows of one kind of export look like."""

    def columns(self) -> list[tuple[str, pa.DataType]]:
        """The flat columns of a CSV or Parquet export."""
        ...

    def flat_row(self, row: asyncpg.Record) -> list[Any]:
        """The row as the values of `columns()`."""
        ...

    def json_object(self, row: asyncpg.Record) -> dict[str, Any]:
        """The row as a JSONL line's object."""
        ...

    def text_length(self, row: asyncpg.Record) -> int:
        """The characters of the row's texts: what a Parquet row group holds."""
        ...


@dataclass(frozen=True)
class PredictionRows:
    """Predictions, with a grade column group per grader."""

    graders: list[str]

    def columns(self) -> list[tuple[str, pa.DataType]]:
        return flat_columns(self.graders)

    def flat_row(self, row: asyncpg.Record) -> list[Any]:
        return flat_row(row, self.graders)

    def json_object(self, row: asyncpg.Record) -> dict[str, Any]:
        fields = Prediction.model_validate(prediction_fields(row)).model_dump(mode="json")
        return {"job_id": str(row["job_id"]), "job_name": row["job_name"]} | fields

    def text_length(self, row: asyncpg.Record) -> int:
        return len(row["prompt"]) + len(row["prediction"]) + len(row["ground_truth"] or "")


async def jsonl(rows: AsyncIterator[asyncpg.Record], shape: ExportShape) -> AsyncIterator[bytes]:
    buffer: list[str] = []
    size = 0
    async for row in rows:
        line = json.dumps(shape.json_object(row)) + "\n"
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


async def csv_chunks(rows: AsyncIterator[asyncpg.Record], shape: ExportShape) -> AsyncIterator[bytes]:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([name for name, _ in shape.columns()])
    async for row in rows:
        writer.writerow(["" if value is None else _csv_value(value) for value in shape.flat_row(row)])
        if text.tell() >= CHUNK_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    yield text.getvalue().encode()


def _csv_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class _Chunks(io.RawIOBase):
    """A write-only file that keeps what was written until it is taken: the Parquet writer's streaming sink."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken, self._parts = b"".join(self._parts), []
        return taken


async def parquet(rows: AsyncIterator[asyncpg.Record], shape: ExportShape) -> AsyncIterator[bytes]:
    columns = shape.columns()
    schema = pa.schema([pa.field(name, kind) for name, kind in columns])
    sink = _Chunks()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    batch: list[list[Any]] = [[] for _ in columns]
    rows_held = text_held = 0

    def flush() -> None:
        nonlocal batch, rows_held, text_held
        writer.write_table(pa.table(batch, schema=schema), row_group_size=ROW_GROUP_ROWS)
        batch, rows_held, text_held = [[] for _ in columns], 0, 0

    async for row in rows:
        for column, value in zip(batch, shape.flat_row(row), strict=True):
            column.append(value)
        rows_held += 1
        text_held += shape.text_length(row)
        if rows_held >= ROW_GROUP_ROWS or text_held >= ROW_GROUP_BYTES:
            flush()
            yield sink.take()
    if rows_held:
        flush()
    writer.close()
    yield sink.take()


ENCODERS: dict[ExportFormat, Callable[[AsyncIterator[asyncpg.Record], ExportShape], AsyncIterator[bytes]]] = {
    ExportFormat.JSONL: jsonl,
    ExportFormat.CSV: csv_chunks,
    ExportFormat.PARQUET: parquet,
}
