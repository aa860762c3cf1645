"""Datasets: the validated upload's row, read, listed in keyset pages, deleted unless a live job reads it.

Every function runs inside the user's transaction: row-level security makes another user's dataset read as none.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from epochscope_api.data.cursor import decode_cursor, encode_cursor, text
from epochscope_api.errors import DatasetInUse, DatasetNotFound
from epochscope_api.response_models import Dataset, DatasetPage, DatasetReport
from epochscope_runtime.dataset_rows import FileType, RowFormat

DATASET_COLUMNS = (
    "dataset_id, filename, file_type, row_format, object_key, bytes, sha256, rows, usable_rows, report, created_at,"
    " (SELECT jsonb_build_object('job_id', p.job_id, 'rounds', p.rounds, 'rule', p.rule, 'pairs', p.pairs,"
    " 'regressions', p.regressions) FROM dataset_provenance p WHERE p.dataset_id = datasets.dataset_id) AS provenance"
)
LIVE_JOBS_SQL = (
    "SELECT j.job_id FROM job_datasets jd JOIN jobs j ON j.job_id = jd.job_id"
    " WHERE jd.dataset_id = $1 AND j.status IN ('queued', 'running') ORDER BY j.created_at, j.job_id"
)


@dataclass(frozen=True)
class StoredDataset:
    """A dataset as the server knows it: the response fields plus where its object lives (never shown to users)."""

    dataset_id: uuid.UUID
    filename: str
    file_type: FileType
    row_format: RowFormat
    object_key: str
    bytes: int
    sha256: str
    rows: int
    usable_rows: int
    report: dict[str, Any]
    created_at: datetime | None = None  # None until the row is inserted
    provenance: dict[str, Any] | None = None  # set for a dataset the API built (dataset_provenance)

    def rows_for(self, method: str) -> int:
        """The rows a job of this training method trains on: the upload's per-method count where the report has
        one (a preference row is a DPO row, not an SFT one), else every usable row."""
        usable = self.report.get("methods", {}).get(method, {}).get("usable")
        return usable if isinstance(usable, int) else self.usable_rows

    def public(self) -> Dataset:
        assert self.created_at is not None, "a stored row has its created_at"
        return Dataset(
            dataset_id=self.dataset_id,
            filename=self.filename,
            file_type=self.file_type,
            row_format=self.row_format,
            bytes=self.bytes,
            sha256=self.sha256,
            rows=self.rows,
            usable_rows=self.usable_rows,
            created_at=self.created_at,
            report=DatasetReport.model_validate(self.report),
            provenance=self.provenance,
        )


def _stored(row: asyncpg.Record) -> StoredDataset:
    values = dict(row)
    return StoredDataset(
        **{**values, "file_type": FileType(values["file_type"]), "row_format": RowFormat(values["row_format"])}
    )


async def fetch_dataset(conn: asyncpg.Connection, dataset_id: uuid.UUID) -> StoredDataset:
    """The current user's dataset; DatasetNotFound if they have none with this id."""
    row = await conn.fetchrow(f"SELECT {DATASET_COLUMNS} FROM datasets WHERE dataset_id = $1", dataset_id)
    if row is None:
        raise DatasetNotFound
    return _stored(row)


async def insert_dataset(conn: asyncpg.Connection, owner_id: str, dataset: StoredDataset) -> StoredDataset:
    row = await conn.fetchrow(
        "INSERT INTO datasets (dataset_id, owner_id, filename, file_type, row_format, object_key, bytes, sha256,"
        " rows, usable_rows, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        f" RETURNING {DATASET_COLUMNS}",
        dataset.dataset_id,
        owner_id,
        dataset.filename,
        dataset.file_type.value,
        dataset.row_format.value,
        dataset.object_key,
        dataset.bytes,
        dataset.sha256,
        dataset.rows,
        dataset.usable_rows,
        dataset.report,
    )
    return _stored(row)


async def insert_provenance(
    conn: asyncpg.Connection, owner_id: str, dataset_id: uuid.UUID, provenance: dict[str, Any]
) -> None:
    """Records what a built dataset came from (DatasetProvenance's fields)."""
    await conn.execute(
        "INSERT INTO dataset_provenance (dataset_id, owner_id, job_id, rounds, rule, pairs, regressions)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        dataset_id,
        owner_id,
        provenance["job_id"],
        provenance["rounds"],
        provenance["rule"],
        provenance["pairs"],
        provenance["regressions"],
    )


def _timestamp(value: Any) -> datetime:
    return datetime.fromisoformat(text(value))


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(text(value))


async def fetch_dataset_page(conn: asyncpg.Connection, limit: int, cursor: str | None) -> DatasetPage:
    """Up to `limit` of the current user's datasets, newest first, after `cursor`."""
    before = decode_cursor(cursor, _timestamp, _uuid) if cursor else None
    rows = await conn.fetch(
        f"SELECT {DATASET_COLUMNS} FROM datasets"
        " WHERE ($1::timestamptz IS NULL OR (created_at, dataset_id) < ($1, $2::uuid))"
        " ORDER BY created_at DESC, dataset_id DESC LIMIT $3",
        before[0] if before else None,
        before[1] if before else None,
        limit + 1,
    )
    items = [_stored(row).public() for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return DatasetPage(
        items=items, next_cursor=encode_cursor([last.created_at.isoformat(), str(last.dataset_id)]) if last else None
    )


async def live_jobs_of(conn: asyncpg.Connection, dataset_id: uuid.UUID) -> list[str]:
    """The ids of the queued or running jobs that read this dataset."""
    return [str(row["job_id"]) for row in await conn.fetch(LIVE_JOBS_SQL, dataset_id)]


async def delete_dataset_row(conn: asyncpg.Connection, dataset_id: uuid.UUID) -> StoredDataset:
    """Deletes the dataset's row and returns it (its objects are the caller's to delete once this commits).
    DatasetInUse naming the jobs while a queued or running job reads it."""
    dataset = await fetch_dataset(conn, dataset_id)
    if jobs := await live_jobs_of(conn, dataset_id):
        raise DatasetInUse(jobs)
    deleted = await conn.fetchval(
        "DELETE FROM datasets d WHERE dataset_id = $1 AND NOT EXISTS ("
        " SELECT 1 FROM job_datasets jd JOIN jobs j ON j.job_id = jd.job_id"
        " WHERE jd.dataset_id = d.dataset_id AND j.status IN ('queued', 'running')) RETURNING true",
        dataset_id,
    )
    if not deleted:  # a job took it between the check and the delete
        raise DatasetInUse(await live_jobs_of(conn, dataset_id))
    return dataset
