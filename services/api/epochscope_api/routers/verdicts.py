"""Verdicts: a user marks a prediction good or bad, with a note and a corrected answer; they read as the `human`
grader in the rounds, the timeline, the comparisons and the checkpoints. Another user's prediction is a 404."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from epochscope_api.data.cursor import INT4_MAX
from epochscope_api.data.verdicts import delete_verdict, fetch_verdict
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, SettingsDep, UserConn
from epochscope_api.http.errors import NOT_FOUND, QUOTA
from epochscope_api.service_layer import verdicts
from epochscope_api.verdict_models import Verdict, VerdictPage, VerdictRequest

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["verdicts"])

PREDICTION = "/predictions/{step}/{sample_id}/verdict"
Step = Annotated[int, Path(ge=0, le=INT4_MAX, description="The prediction's global step.")]
# Not bounded in the schema: a path value past SAMPLE_ID_MAX_CHARS names no prediction (a 404), as an unknown one.
SampleId = Annotated[str, Path(description="The prediction's sample id.")]


@router.put(
    PREDICTION,
    response_model=Verdict,
    responses=NOT_FOUND | QUOTA | {201: {"model": Verdict, "description": "A new verdict."}},
    dependencies=WRITE_LIMITED,
    operation_id="set_verdict",
)
async def set_verdict(
    job_id: uuid.UUID,
    step: Step,
    sample_id: SampleId,
    request: VerdictRequest,
    user_id: CurrentUser,
    conn: UserConn,
    settings: SettingsDep,
    response: Response,
) -> Verdict:
    """Mark the prediction good or bad (201 when new, 200 when changed). The note and the correction are bounded
    by EPOCHSCOPE_VERDICT_NOTE_MAX_CHARS and EPOCHSCOPE_VERDICT_CORRECTION_MAX_CHARS (a 422 naming the field)."""
    verdict, created = await verdicts.set_verdict(conn, user_id, job_id, step, sample_id, request, settings)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return verdict


@router.get(PREDICTION, response_model=Verdict, responses=NOT_FOUND, operation_id="get_verdict")
async def get_verdict(job_id: uuid.UUID, step: Step, sample_id: SampleId, conn: UserConn) -> Verdict:
    """The user's verdict on the prediction; a 404 without one."""
    return Verdict.model_validate(await fetch_verdict(conn, job_id, step, sample_id))


@router.delete(
    PREDICTION,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND | QUOTA,
    dependencies=WRITE_LIMITED,
    operation_id="delete_verdict",
)
async def remove_verdict(job_id: uuid.UUID, step: Step, sample_id: SampleId, conn: UserConn) -> None:
    """Remove the user's verdict on the prediction; a 404 without one."""
    await delete_verdict(conn, job_id, step, sample_id)


@router.get("/verdicts", response_model=VerdictPage, responses=NOT_FOUND, operation_id="list_verdicts")
async def list_verdicts(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    sample_id: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00]*$", description="Only this sample's.")
    ] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's verdicts page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> VerdictPage:
    """The user's verdicts on the job's predictions, in (step, sample_id) order."""
    return await verdicts.list_verdicts(conn, job_id, sample_id, cursor, min(limit, settings.verdicts_page_max))
