"""OpenAI-compatible files (/openai/v1/files): a file is an Epochscope dataset, uploaded, validated, counted against
the same quotas and deleted by the same use cases, and visible through both APIs."""

import uuid
from typing import Annotated, Literal

import obstore
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from epochscope_api.data.cursor import encode_cursor
from epochscope_api.data.datasets import fetch_dataset, fetch_dataset_page
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, PoolDep, SettingsDep, StoreDep, TokenCountersDep, UserConn
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.ids import FILE, openai_id, parse_id
from epochscope_api.openai_compat.objects import OpenAIFile, OpenAIFileDeleted, OpenAIList, openai_error_responses
from epochscope_api.response_models import Dataset
from epochscope_api.routers import datasets as datasets_router
from epochscope_api.service_layer import datasets

router = APIRouter(prefix="/openai/v1/files", tags=["openai"])
READ_CHUNK_BYTES = 1 << 20
BINARY = "application/octet-stream"


def openai_file(dataset: Dataset) -> OpenAIFile:
    report = dataset.report
    return OpenAIFile(
        id=openai_id(FILE, dataset.dataset_id),
        bytes=dataset.bytes,
        created_at=int(dataset.created_at.timestamp()),
        filename=dataset.filename,
        status_details=f"{dataset.usable_rows} usable rows of {dataset.rows} ({dataset.row_format}); "
        f"{report.malformed} malformed",
    )


@router.post(
    "",
    response_model=OpenAIFile,
    operation_id="openai_create_file",
    openapi_extra=datasets_router.UPLOAD_BODY,
    dependencies=WRITE_LIMITED,
    responses=openai_error_responses(400, 413, 429),
)
async def create_file(
    request: Request,
    user_id: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    store: StoreDep,
    counters: TokenCountersDep,
) -> OpenAIFile:
    """Upload a fine-tuning file (multipart, `file` and `purpose`): an Epochscope dataset upload, validated before
    the answer. `purpose` is not read: every file is a fine-tuning dataset."""
    dataset = await datasets_router.upload_dataset(request, user_id, pool, settings, store, counters)
    return openai_file(dataset)


@router.get("", response_model=OpenAIList[OpenAIFile], operation_id="openai_list_files")
async def list_files(
    conn: UserConn,
    settings: SettingsDep,
    after: Annotated[str | None, Query(max_length=64, description="The last file id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most the server's page size.")] = 100,
    order: Annotated[Literal["asc", "desc"], Query(description="Only desc (newest first).")] = "desc",
    purpose: Annotated[str | None, Query(max_length=64, description="Only fine-tune files exist.")] = None,
) -> OpenAIList[OpenAIFile]:
    """The user's files (their datasets), newest first."""
    if order != "desc":
        raise OpenAIError(400, "only order=desc (newest first) is supported", param="order")
    if purpose not in (None, "fine-tune"):
        return OpenAIList[OpenAIFile].of([], False)
    cursor = None
    if after is not None:
        last = await fetch_dataset(conn, parse_id(FILE, after, param="after"))
        cursor = encode_cursor([last.created_at.isoformat(), str(last.dataset_id)])
    page = await fetch_dataset_page(conn, min(limit, settings.datasets_page_max), cursor)
    return OpenAIList[OpenAIFile].of([openai_file(item) for item in page.items], page.next_cursor is not None)


@router.get(
    "/{file_id}", response_model=OpenAIFile, operation_id="openai_retrieve_file", responses=openai_error_responses(404)
)
async def retrieve_file(file_id: str, conn: UserConn) -> OpenAIFile:
    return openai_file((await fetch_dataset(conn, parse_id(FILE, file_id))).public())


@router.delete(
    "/{file_id}",
    response_model=OpenAIFileDeleted,
    operation_id="openai_delete_file",
    dependencies=WRITE_LIMITED,
    responses=openai_error_responses(404, 409, 429),
)
async def delete_file(file_id: str, user_id: CurrentUser, pool: PoolDep, store: StoreDep) -> OpenAIFileDeleted:
    """Delete the file (the dataset); a 409 while a queued or running job reads it."""
    dataset_id: uuid.UUID = parse_id(FILE, file_id)
    await datasets.delete_dataset(pool, store, user_id, dataset_id)
    return OpenAIFileDeleted(id=openai_id(FILE, dataset_id), deleted=True)


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    operation_id="openai_file_content",
    responses=openai_error_responses(404)
    | {
        200: {
            "description": "The file as uploaded.",
            "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def file_content(file_id: str, conn: UserConn, store: StoreDep) -> StreamingResponse:
    """The file's bytes as uploaded, streamed from the store."""
    dataset = await fetch_dataset(conn, parse_id(FILE, file_id))
    result = await obstore.get_async(store, dataset.object_key)
    headers = {"Content-Disposition": f'attachment; filename="{dataset.dataset_id}.{dataset.file_type}"'}
    return StreamingResponse(result.stream(min_chunk_size=READ_CHUNK_BYTES), media_type=BINARY, headers=headers)
