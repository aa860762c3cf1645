"""The predictions page is served by a DirectRoute (http/direct_route.py), without FastAPI's dependency solver: for
the same endpoint it answers every request as FastAPI's own route does (status, body, and what it asks of the
database), and a route it cannot serve plainly is refused when it is built."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any
from uuid import UUID

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.testclient import TestClient
from pydantic import SecretStr

from epochscope.dev_tokens import mint_user_token
from epochscope_api import main
from epochscope_api.auth.user_tokens import UserTokenVerifier
from epochscope_api.data.cursor import encode_cursor
from epochscope_api.errors import DomainError
from epochscope_api.http.direct_route import DirectRoute
from epochscope_api.http.errors import install_error_handlers
from epochscope_api.main import create_app
from epochscope_api.routers import predictions
from epochscope_api.settings import ApiSettings
from epochscope_runtime.object_store import StoreSettings

SECRET = "s" * 32
SETTINGS = ApiSettings(
    environment="development",
    job_token_secret=SecretStr("unused"),
    jwt_secret=SecretStr(SECRET),
    store=StoreSettings(local_dir=Path("unused")),
)
# The fake database knows this job alone: any other is another user's, a 404. Fixed ids: the parametrized tests'
# ids must be alike on every xdist worker.
KNOWN_JOB = UUID("6f1c0b0e-3a52-4c1e-9d7e-2b1f0c9a4e11")
PAGE_PATH = "/v1/jobs/{job_id}/predictions"


class FakeConnection:
    """Records what a page asks of the database; the known job has two rows, any other none (not found)."""

    def __init__(self, asked: list[tuple[Any, ...]]) -> None:
        self.asked = asked

    async def execute(self, query: str) -> str:
        self.asked.append((query,))
        return "OK"

    async def fetch(self, _: str, *arguments: Any) -> list[dict[str, Any]]:
        self.asked.append(arguments)
        if arguments[0] != KNOWN_JOB:
            return []
        return [{"step": 1, "sample_id": f"s{i}", "item": f'{{"n": {i}}}', "followed": i == 1} for i in range(2)]

    def is_closed(self) -> bool:
        return False

    def is_in_transaction(self) -> bool:
        return True


class FakePool:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[FakeConnection]:
        yield FakeConnection(self.asked)

    def acquire(self, timeout: float | None = None) -> Any:
        return self._connection()


def serve(app: FastAPI) -> tuple[TestClient, FakePool]:
    pool = FakePool()
    app.state.settings = SETTINGS
    app.state.adapters = SimpleNamespace(pool=pool, verifier=UserTokenVerifier(SETTINGS))
    return TestClient(app), pool  # no `with`: no lifespan, so no database or broker


def fastapi_route_app() -> FastAPI:
    """The same endpoint on FastAPI's own route class, with the app's error handlers."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_exception_handler(DomainError, main._domain_error)
    app.add_api_route(PAGE_PATH, predictions.list_predictions, methods=["GET"])
    return app


def test_the_app_serves_the_predictions_page_by_a_direct_route() -> None:
    served = [route for route in predictions.router.routes if getattr(route, "path", "").endswith("/predictions")]
    assert [type(route) for route in served] == [DirectRoute]


def token(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_user_token(SECRET, user, timedelta(hours=1))}"}


PAGE = f"/v1/jobs/{KNOWN_JOB}/predictions"
REQUESTS: list[tuple[str, dict[str, str]]] = [
    (PAGE, token("alice")),
    (f"{PAGE}?limit=1&epoch=0.5&step=3&failing_grader=exact", token("alice")),
    (f"{PAGE}?limit=7&cursor={encode_cursor([2, 'row-1'])}", token("alice")),
    (f"{PAGE}?limit=5&limit=9&unknown=1", token("alice")),  # a repeated key: the last one; an unknown one ignored
    ("/v1/jobs/0b9e6c1d-8f3a-4d2b-a5c7-91e2f4d6b803/predictions", token("alice")),  # not this user's job: 404
    ("/v1/jobs/not-a-uuid/predictions", token("alice")),
    (f"{PAGE}?limit=0", token("alice")),
    (f"{PAGE}?limit=&step=", token("alice")),
    (f"{PAGE}?limit=abc&step=-1&epoch=x&failing_grader=no%20spaces", token("alice")),  # every error at once
    (f"{PAGE}?step=2147483648&epoch=inf", token("alice")),
    (f"{PAGE}?cursor=not-a-cursor", token("alice")),
    (f"{PAGE}?limit=100000", token("alice")),  # cut to the server's page limit
    (f"{PAGE}?limit=abc", {}),  # no token: the 401 comes before the parameters' 422
    (f"{PAGE}?limit=5", {"Authorization": "Bearer not-a-jwt"}),
    (f"{PAGE}?limit=5", {"Authorization": "Basic abc"}),
]


@pytest.mark.parametrize(("url", "headers"), REQUESTS)
def test_a_direct_route_answers_as_fastapis_own_route(url: str, headers: dict[str, str]) -> None:
    direct, direct_pool = serve(create_app(SETTINGS))
    plain, plain_pool = serve(fastapi_route_app())
    ours, theirs = direct.get(url, headers=headers), plain.get(url, headers=headers)
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    assert ours.headers.get("www-authenticate") == theirs.headers.get("www-authenticate")
    assert direct_pool.asked == plain_pool.asked  # the same values reached the database, typed alike
    assert [list(map(type, asked)) for asked in direct_pool.asked] == [list(map(type, a)) for a in plain_pool.asked]


async def _user(request: Request) -> str:
    return "someone"


async def _yielding(request: Request) -> AsyncIterator[str]:
    yield "someone"


async def _nested(user: Annotated[str, Depends(_user)]) -> str:
    return user


async def _with_header(x_thing: Annotated[str, Header()]) -> Response:
    return Response()


async def _with_list(ids: Annotated[list[int], Query()]) -> Response:
    return Response()


async def _with_yielding(user: Annotated[str, Depends(_yielding)]) -> Response:
    return Response()


async def _with_nested(user: Annotated[str, Depends(_nested)]) -> Response:
    return Response()


async def _returning_a_dict(job_id: UUID) -> dict[str, str]:
    return {}


def _sync(job_id: UUID) -> Response:
    return Response()


@pytest.mark.parametrize("endpoint", [_with_header, _with_list, _with_yielding, _with_nested, _returning_a_dict, _sync])
def test_a_route_a_direct_route_cannot_serve_plainly_is_refused_when_built(endpoint: Any) -> None:
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(TypeError, match="DirectRoute"):
        router.add_api_route("/v1/things/{job_id}", endpoint, methods=["GET"])


async def _with_default_factory(limit: Annotated[int, Query(default_factory=lambda: 5)]) -> Response:
    return Response()


def test_a_parameter_whose_default_is_made_per_request_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="DirectRoute"):
        APIRouter(route_class=DirectRoute).add_api_route("/v1/things", _with_default_factory, methods=["GET"])
