"""Checks on a submitted job beyond its schema: server limits, the model catalog, its datasets, text Postgres can
store.

Errors use FastAPI's own 422 shape, so every field error names its field the same way.
"""

from collections.abc import Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError

from epochscope_api.errors import UnknownDatasets
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel
from epochscope_schemas.config import JobConfig, limit_violations

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
    catalog or holds a NUL."""
    errors: list[FieldProblem] = list(limit_violations(config, settings.limits))
    errors += [(loc, "must not contain a NUL character") for loc in _with_nul(config.model_dump(mode="json"))]
    model = settings.catalog_model(config.model)
    if model is None:
        offered = ", ".join(entry.id for entry in settings.models)
        errors.append((("model",), f"not a model of this server's catalog (GET /v1/models): {offered}"))
    if errors or model is None:
        raise field_errors(errors)
    return model
