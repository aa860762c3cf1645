"""Cost estimate of a predictions config, used by clients and the web UI's job form."""

from fastapi import APIRouter

from epochscope_api.deps import CurrentUser, SettingsDep
from epochscope_api.estimate import Estimate, EstimateRequest, estimate

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post("/estimate", response_model=Estimate, operation_id="estimate_predictions")
async def estimate_predictions(request: EstimateRequest, _: CurrentUser, settings: SettingsDep) -> Estimate:
    throughput = settings.estimate_tokens_per_second.get(
        request.model or "", settings.estimate_default_tokens_per_second
    )
    return estimate(request, throughput, settings.estimate_price_per_hour)
