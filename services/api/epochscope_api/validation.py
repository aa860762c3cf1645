"""Checks on a submitted job beyond its schema: server limits and readable data files.

Errors use FastAPI's own 422 shape, so every field error names its field the same way.
"""

import os

from fastapi.exceptions import RequestValidationError

from epochscope_schemas.config import JobConfig, PredictionLimits, limit_violations


def _unreadable(path: str) -> str | None:
    if not os.path.isfile(path):
        return f"file not found: {path}"
    if not os.access(path, os.R_OK):
        return f"file is not readable: {path}"
    return None


def check_job_config(config: JobConfig, limits: PredictionLimits) -> None:
    """Raise a 422 naming every field that breaks a server limit or points at a missing file."""
    errors = [(loc, message) for loc, message in limit_violations(config, limits)]
    for loc, path in (
        (("dataset_path",), config.dataset_path),
        (("predictions", "samples_path"), config.predictions.samples_path),
    ):
        problem = path and _unreadable(path)
        if problem:
            errors.append((loc, problem))
    if errors:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": None} for loc, message in errors]
        )
