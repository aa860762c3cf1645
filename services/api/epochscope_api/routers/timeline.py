"""A job's answer timeline (first pass and flips per sample and grader) and the changes between two of its rounds."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from epochscope_api.data.cursor import INT4_MAX
from epochscope_api.deps import SettingsDep, UserConn
from epochscope_api.http.errors import NOT_FOUND
from epochscope_api.service_layer import timeline
from epochscope_api.timeline_models import PairedComparison, TimelinePage
from epochscope_schemas.graders import GRADER_NAME_PATTERN

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])


@router.get("/timeline", response_model=TimelinePage, responses=NOT_FOUND, operation_id="get_answer_timeline")
async def get_answer_timeline(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    grader: Annotated[str | None, Query(pattern=GRADER_NAME_PATTERN, description="Only this grader.")] = None,
    limit: Annotated[int, Query(ge=1, description="Samples per page, at most the server's timeline page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> TimelinePage:
    """Per sample (in sample id order) and grader: its verdict at each round, the round it first passed, and every
    flip (a regression: passed, then failed; a fix: failed, then passed)."""
    limit = min(limit, settings.timeline_page_max)
    return await timeline.job_timeline(conn, job_id, cursor, limit, grader)


@router.get("/rounds/compare", response_model=PairedComparison, responses=NOT_FOUND, operation_id="compare_rounds")
async def compare_rounds(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    a: Annotated[int, Query(ge=0, le=INT4_MAX, description="The earlier round (before).")],
    b: Annotated[int, Query(ge=0, le=INT4_MAX, description="The later round (after).")],
) -> PairedComparison:
    """Round b against round a on the samples both predicted: per grader the fixes and regressions, the exact
    McNemar p-value, paired bootstrap intervals of the mean scores, and a sentence saying it."""
    return await timeline.compare_rounds(conn, job_id, a, b, settings)
