"""Checks on a submitted job beyond its schema: server limits, the model catalog, its datasets, text Postgres can
store.

Errors use FastAPI's own 422 shape, so every field error names its field the same way.
"""

from collections.abc import Iterator
from typing import Any

import asyncpg
from fastapi.exceptions import RequestValidationError

from epochscope_api.data.datasets import fetch_dataset
from epochscope_api.data.verdicts import HUMAN
from epochscope_api.errors import DatasetNotFound, UnknownDatasets
from epochscope_api.jobs.estimate import count_rounds
from epochscope_api.jobs.training_estimate import generated_tokens_per_step, training_steps
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel
from epochscope_schemas.config import JobConfig, limit_violations
from epochscope_schemas.methods import grpo_limit_violations

FieldProblem = tuple[tuple[str | int, ...], str]  # (location in the body, message); http/errors.FieldError is its JSON


def field_errors(errors: list[FieldProblem]) -> RequestValidationError:
    """A 422 naming each field of the request body with its message."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": None} for loc, message in errors]
    )


def unknown_datasets(error: UnknownDatasets) -> RequestValidationError:
    return field_errors([(tuple(field.split(".")), "dataset not found") for field in error.fields])


def _with_nul(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where a string holds a NUL character, which Postgres cannot store."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield loc
            else:
                yield from _with_nul(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _with_nul(item, (*loc, index))


def check_job_config(config: JobConfig, settings: ApiSettings) -> CatalogModel:
    """The job's catalog model; a 422 naming every field that breaks a server limit, names a model outside the
    catalog, holds a NUL or names a grader `human` (the verdicts' grader)."""
    errors: list[FieldProblem] = list(limit_violations(config, settings.limits))
    errors += grpo_limit_violations(config.method, settings.grpo_limits)
    errors += [(loc, "must not contain a NUL character") for loc in _with_nul(config.model_dump(mode="json"))]
    errors += [
        (("predictions", *config.predictions.submitted_location(index), "name"), f"{HUMAN!r} is users' verdicts' name")
        for index, grader in enumerate(config.predictions.graders)
        if grader.name == HUMAN
    ]
    model = settings.catalog_model(config.model)
    if model is None:
        offered = ", ".join(entry.id for entry in settings.models)
        errors.append((("model",), f"not a model of this server's catalog (GET /v1/models): {offered}"))
    if errors or model is None:
        raise field_errors(errors)
    return model


def work_violations(config: JobConfig, train_rows: int, sample_rows: int, settings: ApiSettings) -> list[FieldProblem]:
    """The per-job limits on total work the job would pass, as the estimate counts it: prediction rounds, and
    generated tokens (every answer at max_new_tokens, and every GRPO completion at max_completion_length)."""
    predictions = config.predictions
    rounds = count_rounds(config, train_rows)
    in_rounds = rounds * min(predictions.sample_count, sample_rows) * predictions.max_new_tokens
    in_training = training_steps(config, train_rows)[0] * generated_tokens_per_step(config)
    generated = in_rounds + in_training
    errors: list[FieldProblem] = []
    if rounds > settings.job_max_rounds:
        errors.append(
            (
                ("predictions", "step_interval"),
                f"the job would run {rounds} prediction rounds, over the limit of {settings.job_max_rounds} per job"
                " (EPOCHSCOPE_JOB_MAX_ROUNDS): predict less often, or train fewer epochs",
            )
        )
    if generated > settings.job_max_generated_tokens:
        errors.append(_generation_over_limit(in_rounds, in_training, settings.job_max_generated_tokens))
    return errors


def _generation_over_limit(in_rounds: int, in_training: int, limit: int) -> FieldProblem:
    """The error naming the field of whichever generates more: the prediction rounds or GRPO's training."""
    over = f"the job could generate {in_rounds + in_training} tokens"
    setting = f"over the limit of {limit} per job (EPOCHSCOPE_JOB_MAX_GENERATED_TOKENS)"
    if in_training > in_rounds:
        return (
            ("method", "max_completion_length"),
            f"{over} ({in_training} by GRPO's training: steps x batch_size completions x max_completion_length, "
            f"{in_rounds} by prediction rounds), {setting}: fewer steps or epochs, or a shorter max_completion_length",
        )
    return (("predictions", "max_new_tokens"), f"{over}, {setting}: fewer rounds, samples or max_new_tokens")


def check_job_work(config: JobConfig, train_rows: int, sample_rows: int, settings: ApiSettings) -> None:
    """A 422 naming each per-job work limit the job would pass."""
    if errors := work_violations(config, train_rows, sample_rows, settings):
        raise field_errors(errors)


async def check_job_work_of(conn: asyncpg.Connection, config: JobConfig, settings: ApiSettings) -> None:
    """check_job_work with the usable rows of the job's datasets (the user's own: a missing one is left to the
    inputs' own check)."""
    if not config.predictions.enabled and not generated_tokens_per_step(config):
        return
    try:
        train = await fetch_dataset(conn, config.dataset_id)
        source = train
        if config.predictions.samples_dataset_id is not None:
            source = await fetch_dataset(conn, config.predictions.samples_dataset_id)
    except DatasetNotFound:
        return
    check_job_work(config, train.rows_for(config.method.type), source.usable_rows, settings)


async def check_method_rows_of(conn: asyncpg.Connection, config: JobConfig) -> None:
    """A 422 naming `dataset_id` (or `eval_dataset_id`) when the job's training method can use none of that
    dataset's rows, by the upload's per-method report. A dataset reported before it had one, or a missing one, is
    left to the trainer and the inputs' own check."""
    method = config.method.type
    errors: list[FieldProblem] = []
    for field, dataset_id in (("dataset_id", config.dataset_id), ("eval_dataset_id", config.eval_dataset_id)):
        if dataset_id is None:
            continue
        try:
            dataset = await fetch_dataset(conn, dataset_id)
        except DatasetNotFound:
            continue
        rows = dataset.public().report.methods.get(method)
        if rows is None or rows.usable:
            continue
        reasons = "; ".join(f"{reason} ({unusable.rows})" for reason, unusable in list(rows.unusable.items())[:3])
        errors.append(((field,), f"dataset {dataset_id} has no row a {method} job can use: {reasons or 'no rows'}"))
    if errors:
        raise field_errors(errors)
