"""Datasets: upload (streamed into the object store, then validated with the trainer's reader), list, read with
the validation report, page through the usable rows as the trainer reads them, delete unless a live job reads it.

The upload and the deletion are service_layer/datasets.py's use cases.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from epochscope_api.data.cursor import INT8, decode_cursor, encode_cursor
from epochscope_api.data.datasets import fetch_dataset, fetch_dataset_page
from epochscope_api.datasets.row_index import read_page
from epochscope_api.datasets.scan import Scanner
from epochscope_api.datasets.uploads import RequestUpload
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, PoolDep, SettingsDep, StoreDep, TokenCountersDep, UserConn
from epochscope_api.http.errors import QUOTA, error_responses
from epochscope_api.response_models import Dataset, DatasetPage, DatasetRow, DatasetRowPage
from epochscope_api.service_layer import datasets
from epochscope_runtime.sampler import sample_id_of, to_sample

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

NOT_FOUND = {404: {**error_responses(404)[404], "description": "No such dataset for this user."}}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The dataset: .jsonl/.ndjson, .csv or .parquet (the name's suffix).",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Dataset,
    operation_id="upload_dataset",
    openapi_extra=UPLOAD_BODY,
    dependencies=WRITE_LIMITED,
    responses={
        413: {**error_responses(422)[422], "description": "The file is larger than the server's upload limit."},
        422: {**error_responses(422)[422], "description": "Not a usable dataset; `detail` says why."},
        **QUOTA,
    },
)
async def upload_dataset(
    request: Request,
    user_id: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    store: StoreDep,
    counters: TokenCountersDep,
) -> Dataset:
    """Upload a dataset file; the answer is its validation report (rows, malformed rows, token counts). Past the
    user's quota of datasets or of their bytes, a 429 (`limit`: datasets or dataset_bytes) and nothing is kept."""
    scan = Scanner(store, counters, settings)
    body = RequestUpload(request, store, user_id, scan.while_stored)
    return await datasets.upload_dataset(pool, store, user_id, body, scan, settings)


@router.get("", response_model=DatasetPage, operation_id="list_datasets")
async def list_datasets(
    conn: UserConn,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> DatasetPage:
    """The current user's datasets, newest first."""
    return await fetch_dataset_page(conn, min(limit, settings.datasets_page_max), cursor)


@router.get("/{dataset_id}", response_model=Dataset, responses=NOT_FOUND, operation_id="get_dataset")
async def get_dataset(dataset_id: uuid.UUID, conn: UserConn) -> Dataset:
    """The dataset with its validation report."""
    return (await fetch_dataset(conn, dataset_id)).public()


@router.get(
    "/{dataset_id}/rows",
    response_model=DatasetRowPage,
    responses=NOT_FOUND | QUOTA,
    dependencies=WRITE_LIMITED,  # reads the stored file: as costly as a write, so rate-limited like one
    operation_id="list_dataset_rows",
)
async def list_dataset_rows(
    dataset_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> DatasetRowPage:
    """The usable rows in file order, as the trainer reads them: sample id, prompt and ground truth. A page stops
    short of `limit` past the server's page size in bytes (always one row at least)."""
    dataset = await fetch_dataset(conn, dataset_id)
    start = decode_cursor(cursor, INT8)[0] if cursor else 0
    limit = min(limit, settings.dataset_rows_page_max)
    examples = await read_page(store, dataset, max(start, 0), limit, settings.page_max_bytes)
    items = []
    for example in examples:
        sample = to_sample(example, 0)
        items.append(
            DatasetRow(
                line=example.row + 1,
                sample_id=sample_id_of(example.row),
                format=example.format,
                prompt=sample.messages if sample.messages is not None else sample.text or "",
                ground_truth=sample.ground_truth,
            )
        )
    after = max(start, 0) + len(examples)
    return DatasetRowPage(items=items, next_cursor=encode_cursor([after]) if after < dataset.usable_rows else None)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_dataset",
    dependencies=WRITE_LIMITED,
    responses={
        **NOT_FOUND,
        409: {**error_responses(422)[422], "description": "A queued or running job uses it."},
        **QUOTA,
    },
)
async def delete_dataset(dataset_id: uuid.UUID, user_id: CurrentUser, pool: PoolDep, store: StoreDep) -> None:
    """Delete the dataset and its file; refused while a queued or running job reads it."""
    await datasets.delete_dataset(pool, store, user_id, dataset_id)
