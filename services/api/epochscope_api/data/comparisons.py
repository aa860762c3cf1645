"""Comparing jobs: their rounds on one epoch axis, and their answers side by side on the samples they share.

Two jobs share a sample when they predict on the same dataset (`predictions.samples_dataset_id`, else the
training data `dataset_id`) and both have its sample id (`row-000042` is the row's place in that file): the same
id in another dataset is another row, so samples match on (dataset, sample id), never on the id alone.
"""

import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from epochscope_api.data.predictions import PREDICTION_READ_COLUMNS
from epochscope_api.data.predictions import _prediction_fields as prediction_fields
from epochscope_api.data.rounds import fetch_rounds
from epochscope_api.errors import JobNotFound, SampleNotFound
from epochscope_api.response_models import (
    ComparedAnswer,
    ComparedJob,
    ComparedSample,
    Comparison,
    SampleAcrossJobs,
    SampleJobRounds,
    SampleRound,
)

# The dataset a job's prediction samples come from: the samples dataset, else the training data.
SAMPLES_DATASET_SQL = "coalesce(config->'predictions'->>'samples_dataset_id', config->>'dataset_id')::uuid"
_JOBS_SQL = f"SELECT job_id, name, status, config, {SAMPLES_DATASET_SQL} AS samples_dataset_id FROM jobs"
_SAMPLE_ROUNDS = TypeAdapter(list[SampleRound])


async def fetch_compared_jobs(conn: asyncpg.Connection, job_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The jobs in the order asked; JobNotFound when any is not the current user's (RLS hides it)."""
    rows = {row["job_id"]: row for row in await conn.fetch(f"{_JOBS_SQL} WHERE job_id = ANY($1)", job_ids)}
    if len(rows) != len(set(job_ids)):
        raise JobNotFound
    return [rows[job_id] for job_id in job_ids]


async def shared_sample_ids(conn: asyncpg.Connection, jobs: list[asyncpg.Record]) -> tuple[list[str], dict[Any, int]]:
    """(sample ids every job predicted on the same dataset, in sample order; each job's own sample count)."""
    job_ids = [job["job_id"] for job in jobs]
    rows = await conn.fetch(
        "SELECT job_id, sample_id, min(sample_index) AS sample_index FROM training_predictions"
        " WHERE job_id = ANY($1) GROUP BY job_id, sample_id",
        job_ids,
    )
    per_job: dict[Any, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for row in rows:
        per_job[row["job_id"]][row["sample_id"]] = row["sample_index"]
    counts = {job_id: len(samples) for job_id, samples in per_job.items()}
    if len({job["samples_dataset_id"] for job in jobs}) != 1:
        return [], counts
    first = per_job[job_ids[0]]
    shared = set(first).intersection(*(per_job[job_id] for job_id in job_ids[1:]))
    return sorted(shared, key=lambda sample_id: (first[sample_id], sample_id)), counts


async def fetch_comparison(conn: asyncpg.Connection, job_ids: list[uuid.UUID], epoch: float | None) -> Comparison:
    """Each job's rounds, and per shared sample each job's latest prediction (or the one at `epoch`)."""
    jobs = await fetch_compared_jobs(conn, job_ids)
    shared, counts = await shared_sample_ids(conn, jobs)
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (sample_id, job_id) job_id, {PREDICTION_READ_COLUMNS} FROM training_predictions"
        " WHERE job_id = ANY($1) AND sample_id = ANY($2) AND ($3::float8 IS NULL OR epoch = $3)"
        " ORDER BY sample_id, job_id, step DESC",
        job_ids,
        shared,
        epoch,
    )
    answers: dict[str, dict[Any, asyncpg.Record]] = {sample_id: {} for sample_id in shared}
    for row in rows:
        answers[row["sample_id"]][row["job_id"]] = row
    samples = []
    for sample_id in shared:
        by_job = answers[sample_id]
        first = next(iter(by_job.values()), None)
        samples.append(
            ComparedSample(
                sample_id=sample_id,
                sample_index=first["sample_index"] if first else 0,
                prompt=first["prompt"] if first else "",
                ground_truth=first["ground_truth"] if first else None,
                answers=[_answer(job_id, by_job.get(job_id)) for job_id in job_ids],
            )
        )
    return Comparison(
        jobs=[await _compared_job(conn, job, counts[job["job_id"]]) for job in jobs],
        same_dataset=len({job["samples_dataset_id"] for job in jobs}) == 1,
        shared_samples=len(shared),
        epoch=epoch,
        samples=samples,
    )


def _answer(job_id: uuid.UUID, row: asyncpg.Record | None) -> ComparedAnswer:
    if row is None:
        return ComparedAnswer(job_id=job_id, answer=None)
    fields = prediction_fields(row)
    return ComparedAnswer(job_id=job_id, answer=_SAMPLE_ROUNDS.validate_python([fields])[0])


async def _compared_job(conn: asyncpg.Connection, job: asyncpg.Record, samples: int) -> ComparedJob:
    return ComparedJob(
        job_id=job["job_id"],
        name=job["name"],
        status=job["status"],
        config=job["config"],
        samples_dataset_id=job["samples_dataset_id"],
        samples=samples,
        rounds=await fetch_rounds(conn, job["job_id"]),
    )


async def fetch_sample_across_jobs(
    conn: asyncpg.Connection, job_ids: list[uuid.UUID], sample_id: str
) -> SampleAcrossJobs:
    """One sample at every round of every job; a job on another dataset than the first job's has no rounds (its
    sample of that id is another row). SampleNotFound when no job on the first job's dataset predicted it."""
    jobs = await fetch_compared_jobs(conn, job_ids)
    if "\x00" in sample_id:
        raise SampleNotFound
    dataset = jobs[0]["samples_dataset_id"]
    matching = [job["job_id"] for job in jobs if job["samples_dataset_id"] == dataset]
    rows = await conn.fetch(
        f"SELECT job_id, {PREDICTION_READ_COLUMNS} FROM training_predictions"
        " WHERE job_id = ANY($1) AND sample_id = $2 ORDER BY job_id, step",
        matching,
        sample_id,
    )
    if not rows:
        raise SampleNotFound
    by_job: dict[Any, list[dict[str, Any]]] = {job_id: [] for job_id in job_ids}
    for row in rows:
        by_job[row["job_id"]].append(prediction_fields(row))
    first = rows[0]
    return SampleAcrossJobs(
        sample_id=sample_id,
        sample_index=first["sample_index"],
        prompt=first["prompt"],
        ground_truth=first["ground_truth"],
        jobs=[
            SampleJobRounds(
                job_id=job["job_id"],
                name=job["name"],
                same_dataset=job["samples_dataset_id"] == dataset,
                rounds=_SAMPLE_ROUNDS.validate_python(by_job[job["job_id"]]),
            )
            for job in jobs
        ],
    )
