"""Datasets' use cases: an upload (room checked, the body stored, scanned, its row inserted, clean-up on any
failure) and a deletion (the row, then its objects).

An upload manages its own two short transactions: it must not hold a database connection while a large file
arrives, and a dataset's objects are deleted only once the deletion of its row has committed.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg

from epochscope_api.data.datasets import (
    StoredDataset,
    delete_dataset_row,
    fetch_dataset,
    insert_dataset,
    insert_provenance,
)
from epochscope_api.data.db import user_transaction
from epochscope_api.data.quotas import check_dataset_room, dataset_bytes_left
from epochscope_api.datasets.row_index import index_key
from epochscope_api.datasets.scan import Scan
from epochscope_api.datasets.uploads import StoredUpload, delete_quietly
from epochscope_api.errors import DomainError, QuotaExceeded
from epochscope_api.response_models import Dataset
from epochscope_api.settings import ApiSettings
from epochscope_runtime.dataset_rows import FileType
from epochscope_runtime.object_store import ObjectStore


class UploadBody(Protocol):
    """The file being uploaded, not read yet (the request's body)."""

    async def store(
        self, dataset_id: uuid.UUID, limit: int, too_large: Callable[[], DomainError] | None
    ) -> StoredUpload: ...

    async def discard(self) -> None: ...


Scanner = Callable[[str, FileType], Awaitable[Scan]]  # the stored object's key and type -> its report


async def upload_dataset(
    pool: asyncpg.Pool,
    store: ObjectStore,
    user_id: str,
    body: UploadBody,
    scan: Scanner,
    settings: ApiSettings,
    provenance: dict[str, Any] | None = None,
) -> Dataset:
    """The uploaded dataset with its validation report. Past the user's quota of datasets or of their bytes,
    QuotaExceeded and nothing is kept (the body discarded unread, or the stored part deleted); a file that is not
    a usable dataset is refused by the scan and its objects deleted too. A dataset the API built records its
    `provenance` (DatasetProvenance's fields) in the same transaction."""
    dataset_id = uuid.uuid4()
    try:
        async with user_transaction(pool, user_id) as conn:
            room = await dataset_bytes_left(conn, user_id, settings)
    except QuotaExceeded:
        await body.discard()
        raise
    if room < settings.upload_max_bytes:  # the quota binds before the size limit: stop the upload there
        over_quota = QuotaExceeded.dataset_bytes(settings.quota_dataset_bytes, settings.quota_retry_after_seconds)
        upload = await body.store(dataset_id, room, lambda: over_quota)
    else:
        upload = await body.store(dataset_id, settings.upload_max_bytes, None)
    try:
        report = await (upload.scan.result() if upload.scan else scan(upload.object_key, upload.file_type))
        stored = StoredDataset(
            dataset_id=dataset_id,
            filename=upload.filename,
            file_type=upload.file_type,
            row_format=report.row_format,
            object_key=upload.object_key,
            bytes=upload.bytes,
            sha256=upload.sha256,
            rows=report.rows,
            usable_rows=report.usable_rows,
            report=report.report.model_dump(mode="json"),
        )
        async with user_transaction(pool, user_id) as conn:
            await check_dataset_room(conn, user_id, upload.bytes, settings)
            inserted = await insert_dataset(conn, user_id, stored)
            if provenance is not None:
                await insert_provenance(conn, user_id, dataset_id, provenance)
                inserted = await fetch_dataset(conn, dataset_id)
            return inserted.public()
    except BaseException:
        await asyncio.shield(delete_quietly(store, upload.object_key, index_key(upload.object_key)))
        raise


async def delete_dataset(pool: asyncpg.Pool, store: ObjectStore, user_id: str, dataset_id: uuid.UUID) -> None:
    """The dataset's row (DatasetInUse while a queued or running job reads it), then its file and row index."""
    async with user_transaction(pool, user_id) as conn:
        dataset = await delete_dataset_row(conn, dataset_id)
    await delete_quietly(store, dataset.object_key, index_key(dataset.object_key))
