"""Preference pairs built from a job's rounds: a new dataset, validated and reported as an upload, ready for DPO."""

import uuid

from fastapi import APIRouter, status

from epochscope_api.datasets.scan import Scanner
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, PoolDep, SettingsDep, StoreDep, TokenCountersDep
from epochscope_api.http.errors import NOT_FOUND, QUOTA, error_responses
from epochscope_api.preference_models import PairRule
from epochscope_api.response_models import Dataset
from epochscope_api.service_layer.preference_pairs import build_preference_pairs

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["datasets"])


@router.post(
    "/preference-pairs",
    status_code=status.HTTP_201_CREATED,
    response_model=Dataset,
    responses=NOT_FOUND | QUOTA | error_responses(413),
    dependencies=WRITE_LIMITED,
    operation_id="build_preference_pairs",
)
async def create_preference_pairs(
    job_id: uuid.UUID,
    rule: PairRule,
    user_id: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    store: StoreDep,
    counters: TokenCountersDep,
) -> Dataset:
    """A new dataset of preference pairs (`prompt`/`chosen`/`rejected`, conversational for chat samples) from the
    job's answers: rejected an answer that failed the rule's grader, chosen first the answer an earlier round got
    right (regressions first), then your correction, the ground truth or a passing answer. It is validated and
    reported as an upload is, counts against the same quotas, and records the job, rounds and rule as its
    provenance. At most EPOCHSCOPE_PREFERENCE_PAIRS_MAX pairs (`max_pairs` past it: a 422)."""
    scan = Scanner(store, counters, settings)
    return await build_preference_pairs(pool, store, user_id, job_id, rule, scan, settings)
