"""Liveness and readiness probes."""

from fastapi import APIRouter, Request, Response, status

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz")
async def readyz(request: Request, response: Response) -> dict[str, bool]:
    """Ready when the database answers and the outbox relay has reached the broker."""
    try:
        async with request.app.state.pool.acquire() as conn:
            database = await conn.fetchval("SELECT true")
    except Exception:
        database = False
    broker = request.app.state.relay.broker_reachable
    if not (database and broker):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"database": bool(database), "broker": broker}
