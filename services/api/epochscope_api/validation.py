"""Checks on a submitted job beyond its schema: server limits, readable data files, text Postgres can store.

Errors use FastAPI's own 422 shape, so every field error names its field the same way.
"""

import os
from collections.abc import Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError

from epochscope_schemas.config import JobConfig, PredictionLimits, limit_violations


def _unreadable(path: str) -> str | None:
    if not os.path.isfile(path):
        return f"file not found: {path}"
    if not os.access(path, os.R_OK):
        return f"file is not readable: {path}"
    return None


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


def check_job_config(config: JobConfig, limits: PredictionLimits) -> None:
    """Raise a 422 naming every field that breaks a server limit, points at a missing file or holds a NUL."""
    errors: list[tuple[tuple[str | int, ...], str]] = list(limit_violations(config, limits))
    errors += [(loc, "must not contain a NUL character") for loc in _with_nul(config.model_dump(mode="json"))]
    for loc, path in (
        (("dataset_path",), config.dataset_path),
        (("eval_dataset_path",), config.eval_dataset_path),
        (("predictions", "samples_path"), config.predictions.samples_path),
    ):
        problem = path and _unreadable(path)
        if problem:
            errors.append((loc, problem))
    if errors:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": None} for loc, message in errors]
        )
