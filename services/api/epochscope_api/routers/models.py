"""The model catalog: the models this server offers, the only ones a job may name."""

from fastapi import APIRouter
from pydantic import BaseModel

from epochscope_api.deps import CurrentUser, SettingsDep
from epochscope_runtime.catalog import CatalogEntry

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelList(BaseModel):
    items: list[CatalogEntry]


@router.get("", response_model=ModelList, operation_id="list_models")
async def list_models(_: CurrentUser, settings: SettingsDep) -> ModelList:
    """Every catalog model: id (what a job's `model` names), where the trainer loads it from, size, context length,
    whether it has a chat template, and the throughput estimates assume."""
    return ModelList(items=[model.entry() for model in settings.models])
