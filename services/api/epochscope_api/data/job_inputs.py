"""A job's inputs: the datasets its config names, resolved under row-level security to their object keys, and the
catalog model's source. What the trainer reads comes only from here, never from a string the user chose."""

import uuid

import asyncpg

from epochscope_api.errors import UnknownDatasets
from epochscope_runtime.catalog import CatalogModel
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import DatasetObject, JobInputs, ModelSource

ROLE_OF_FIELD = {"dataset_id": "train", "eval_dataset_id": "eval", "predictions.samples_dataset_id": "samples"}


async def resolve_inputs(conn: asyncpg.Connection, config: JobConfig, model: CatalogModel) -> JobInputs:
    """The job's object keys and model source; UnknownDatasets naming every field whose dataset is not found."""
    named = config.dataset_ids()
    rows = await conn.fetch(
        "SELECT dataset_id, object_key AS key, file_type, row_format, sha256, bytes FROM datasets"
        " WHERE dataset_id = ANY($1::uuid[])",
        list(set(named.values())),
    )
    found = {row["dataset_id"]: DatasetObject(**dict(row)) for row in rows}
    missing = [field for field, dataset_id in named.items() if dataset_id not in found]
    if missing:
        raise UnknownDatasets(missing)
    by_role = {ROLE_OF_FIELD[field]: found[dataset_id] for field, dataset_id in named.items()}
    return JobInputs(model=ModelSource(id=model.id, source=model.source), **by_role)


async def link_job_datasets(conn: asyncpg.Connection, job_id: uuid.UUID, owner_id: str, inputs: JobInputs) -> None:
    """Record which datasets the job reads, so a dataset in use by a queued or running job cannot be deleted."""
    links = [(role, getattr(inputs, role)) for role in ("train", "eval", "samples")]
    await conn.executemany(
        "INSERT INTO job_datasets (job_id, dataset_id, owner_id, role) VALUES ($1, $2, $3, $4)",
        [(job_id, dataset.dataset_id, owner_id, role) for role, dataset in links if dataset is not None],
    )
