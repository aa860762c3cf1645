"""Liveness and readiness probes."""

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from epochscope_api.data.health import database_answers
from epochscope_api.deps import PoolDep, RelayDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    database: bool
    broker: bool


@router.get("/healthz", response_model=Health, operation_id="healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or the broker is unreachable."}},
    operation_id="readyz",
)
async def readyz(response: Response, pool: PoolDep, relay: RelayDep) -> Readiness:
    """Ready when the database answers and the outbox relay has reached the broker."""
    readiness = Readiness(database=await database_answers(pool), broker=relay.broker_reachable)
    if not (readiness.database and readiness.broker):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness
