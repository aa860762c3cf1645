"""Checkpoints: a job's kept weights, listed with their round metrics, and downloaded as a streamed tar."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from epochscope_api.data.checkpoints import fetch_checkpoints, fetch_stored_checkpoint
from epochscope_api.deps import StoreDep, UserConn
from epochscope_api.exports.checkpoint_archive import archive_bytes, check_objects, tar_stream
from epochscope_api.http.errors import NOT_FOUND
from epochscope_api.response_models import CheckpointList
from epochscope_api.service_layer.checkpoints import checkpoints_ranked_by_human

# A tar archive, served as generic binary: generated clients (openapi-python-client) read it as a File.
TAR = "application/octet-stream"
router = APIRouter(prefix="/v1/jobs", tags=["checkpoints"])


@router.get(
    "/{job_id}/checkpoints", response_model=CheckpointList, responses=NOT_FOUND, operation_id="list_checkpoints"
)
async def list_checkpoints(
    job_id: uuid.UUID,
    conn: UserConn,
    rank_by: Annotated[
        Literal["job", "human"],
        Query(description="job: the job's checkpoint metric; human: the user's verdicts on each round."),
    ] = "job",
) -> CheckpointList:
    """The job's kept checkpoints in round order, each with its round's metrics; the best one marked. Ranked by
    the user's verdicts (rank_by=human), a round's `human` pass rate counts by the low end of its Wilson 95%
    interval, so 1 good of 1 judged does not beat 9 of 10; rounds without verdicts are not ranked."""
    if rank_by == "human":
        return await checkpoints_ranked_by_human(conn, job_id)
    return await fetch_checkpoints(conn, job_id)


@router.get(
    "/{job_id}/checkpoints/{checkpoint_id}/download",
    response_class=StreamingResponse,
    responses=NOT_FOUND
    | {
        200: {
            "description": "A tar of the checkpoint's files.",
            "content": {TAR: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    operation_id="download_checkpoint",
)
async def download_checkpoint(
    job_id: uuid.UUID, checkpoint_id: uuid.UUID, conn: UserConn, store: StoreDep
) -> StreamingResponse:
    """The checkpoint's files (weights or LoRA adapter, config, tokenizer) as a tar, streamed from the store
    chunk by chunk: never whole in the API's memory."""
    stored = await fetch_stored_checkpoint(conn, job_id, checkpoint_id)
    await check_objects(store, stored)  # a missing object: 404 before any byte is sent
    name = "final" if stored.round_index is None else f"round-{stored.round_index}"
    headers = {
        "Content-Disposition": f'attachment; filename="checkpoint-{job_id}-{name}.tar"',
        "Content-Length": str(archive_bytes(stored.files)),
    }
    return StreamingResponse(tar_stream(store, stored, name), media_type=TAR, headers=headers)
