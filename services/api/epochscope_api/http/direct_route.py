"""A route class for the hottest reads: FastAPI documents the route from its signature as usual, but a request is
served without FastAPI's general dependency solver.

The solver walks every dependency as a tree, and for each one looks for path, query, header and cookie parameters
and builds exit stacks and caches: on the predictions page that was most of FastAPI's ~250 us per request. A
DirectRoute accepts only what it can serve plainly, checked when the route is built:

- path and query parameters of one value each, validated by their own FastAPI fields as `request_params_to_args`
  does (the same rules, the same 422s), with what kind of parameter each is worked out once, not per request;
- dependencies that are async functions of the request alone (the current user, the pool, the settings), awaited in
  the order the endpoint names them, before the parameters are validated (as FastAPI does: a 401 before a 422);
  `app.dependency_overrides` does not reach them;
- an endpoint that returns a Response (no response model to validate or encode on the way out).
"""

import inspect
from collections.abc import Callable, Coroutine, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params
from fastapi._compat import ModelField, field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_missing_field_error
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Json


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = self.dependant
        _check_plain(dependant, self.path)
        endpoint = self.endpoint
        path_params = [_PlainParam.of(field) for field in dependant.path_params]
        query_params = [_PlainParam.of(field) for field in dependant.query_params]
        dependencies = [(sub.name, sub.call) for sub in dependant.dependencies]
        request_name = dependant.request_param_name

        async def handle(request: Request) -> Response:
            values: dict[str, Any] = {request_name: request} if request_name else {}
            for name, call in dependencies:
                values[name] = await call(request)
            errors: list[Any] = []
            for declared, received in ((path_params, request.path_params), (query_params, request.query_params)):
                for param in declared:
                    value, param_errors = param.read(received)
                    if param_errors:
                        errors += param_errors
                    else:
                        values[param.name] = value
            if errors:
                raise RequestValidationError(errors)
            return await endpoint(**values)

        return handle


@dataclass(frozen=True)
class _PlainParam:
    """A path or query parameter with one name and one value: what FastAPI's `request_params_to_args` does for it
    (a missing one is its default or the missing-field error; a present one validated by its field, errors located
    at (in, alias)), without working out each request again what kind of parameter it is."""

    name: str
    alias: str
    loc: tuple[str, str]
    field: ModelField
    required: bool
    default: Any
    validate_default: bool

    @classmethod
    def of(cls, field: ModelField) -> "_PlainParam":
        info = field.field_info
        if not isinstance(info, params.Param) or info.validation_alias is not None or info.default_factory:
            raise TypeError(f"{field.name}: a DirectRoute's parameters are plain path or query parameters")
        if field_annotation_is_sequence(info.annotation) or any(type(item) is Json for item in info.metadata):
            raise TypeError(f"{field.name}: a DirectRoute's parameters have one value each")
        loc = (info.in_.value, field.alias)
        return cls(field.name, field.alias, loc, field, info.is_required(), field.default, bool(info.validate_default))

    def read(self, received: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        value = received.get(self.alias)
        if value is None:
            if self.required:
                return None, [get_missing_field_error(loc=self.loc)]
            value = deepcopy(self.default)
            if not self.validate_default:
                return value, []
        return self.field.validate(value, loc=self.loc)


def _check_plain(dependant: Dependant, path: str) -> None:
    """A TypeError, when the route is built, for whatever a DirectRoute does not serve."""
    if dependant.header_params or dependant.cookie_params or dependant.body_params:
        raise TypeError(f"{path}: a DirectRoute takes path and query parameters only")
    returns = inspect.signature(dependant.call).return_annotation
    responds = isinstance(returns, type) and issubclass(returns, Response)
    if not (inspect.iscoroutinefunction(dependant.call) and responds):
        raise TypeError(f"{path}: a DirectRoute's endpoint is an async function that returns a Response")
    for sub in dependant.dependencies:
        plain = (
            sub.name is not None
            and sub.request_param_name is not None
            and not (sub.dependencies or sub.path_params or sub.query_params or sub.header_params)
            and not (sub.cookie_params or sub.body_params)
            and _is_coroutine_function(sub.call)
        )
        if not plain:
            raise TypeError(f"{path}: a DirectRoute's dependencies are async functions of the request alone")


def _is_coroutine_function(call: Any) -> bool:
    """An async function, or an object whose __call__ is one (FastAPI's security schemes)."""
    return inspect.iscoroutinefunction(call) or (callable(call) and inspect.iscoroutinefunction(call.__call__))
