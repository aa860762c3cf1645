"""Comparing 2-4 of the user's jobs: rounds on one epoch axis, answers side by side on their shared samples."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from epochscope_api.data.comparisons import fetch_comparison, fetch_sample_across_jobs
from epochscope_api.deps import CurrentUser, SettingsDep, UserConn
from epochscope_api.errors import BadParameter
from epochscope_api.http.errors import NOT_FOUND
from epochscope_api.response_models import Comparison, SampleAcrossJobs
from epochscope_api.service_layer import timeline
from epochscope_api.timeline_models import PairedComparison

router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])

MIN_JOBS, MAX_JOBS = 2, 4


async def job_ids_query(
    _: CurrentUser,
    job_ids: Annotated[
        str, Query(max_length=200, description="2 to 4 job ids, comma-separated; another user's is a 404.")
    ],
) -> list[uuid.UUID]:
    """The distinct job ids, in the order given; BadParameter (422) for a malformed id or a wrong count. The user
    is verified first: without a token the answer is a 401, whatever the ids."""
    ids: list[uuid.UUID] = []
    for part in job_ids.split(","):
        try:
            job_id = uuid.UUID(part.strip())
        except ValueError:
            raise BadParameter("job_ids", f"{part.strip()[:40]!r} is not a job id") from None
        if job_id not in ids:
            ids.append(job_id)
    if not MIN_JOBS <= len(ids) <= MAX_JOBS:
        raise BadParameter("job_ids", f"give {MIN_JOBS} to {MAX_JOBS} distinct job ids, not {len(ids)}")
    return ids


JobIds = Annotated[list[uuid.UUID], Depends(job_ids_query)]


@router.get("", response_model=Comparison, responses=NOT_FOUND, operation_id="compare_jobs")
async def compare_jobs(
    job_ids: JobIds,
    conn: UserConn,
    epoch: Annotated[float | None, Query(ge=0, description="Answers of this epoch; default each job's latest.")] = None,
) -> Comparison:
    """Each job's rounds (epoch is the time axis) and, per sample every job shares (same dataset, same sample id),
    each job's answer with its grades."""
    return await fetch_comparison(conn, job_ids, epoch)


@router.get("/samples/{sample_id}", response_model=SampleAcrossJobs, responses=NOT_FOUND, operation_id="compare_sample")
async def compare_sample(
    sample_id: Annotated[str, Path(max_length=200)], job_ids: JobIds, conn: UserConn
) -> SampleAcrossJobs:
    """One sample at every round of every job."""
    return await fetch_sample_across_jobs(conn, job_ids, sample_id)


@router.get("/changes", response_model=PairedComparison, responses=NOT_FOUND, operation_id="compare_job_changes")
async def compare_job_changes(job_ids: JobIds, conn: UserConn, settings: SettingsDep) -> PairedComparison:
    """The second job's latest answers against the first's on the samples they share: per grader the fixes and
    regressions, the exact McNemar p-value, paired bootstrap intervals of the mean scores, in words too."""
    return await timeline.compare_two_jobs(conn, job_ids, settings)
