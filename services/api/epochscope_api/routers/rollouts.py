"""GRPO rollouts of one job: a keyset-paged list by step."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from epochscope_api.data.cursor import INT4_MAX
from epochscope_api.data.rollouts import fetch_rollout_page
from epochscope_api.deps import SettingsDep, UserConn
from epochscope_api.http.errors import NOT_FOUND
from epochscope_api.response_models import RolloutPage

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["rollouts"])


@router.get("/rollouts", response_model=RolloutPage, responses=NOT_FOUND, operation_id="list_rollouts")
async def list_rollouts(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    step: Annotated[int | None, Query(ge=0, le=INT4_MAX, description="Only this training step.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> RolloutPage:
    """In (step, completion_index) order; rows stored while a client pages appear on a later page, never twice. A
    page holds at most `limit` rows and stops early past the server's page size in bytes (one row at least)."""
    limit = min(limit, settings.rollouts_page_max)
    return await fetch_rollout_page(conn, job_id, step, limit, cursor, settings.page_max_bytes)
