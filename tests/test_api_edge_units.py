"""Pure parts of the API's edge (issue 23 items 5-7, 9): who may configure which tokens, the HS256 lifetime cap,
live-stream tickets, per-user slots of long responses, the browser headers, the docs pages' pinned assets, the
model catalog users see, and the metrics bearer."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from epochscope.dev_tokens import mint_user_token
from epochscope_api.auth.stream_tickets import StreamTickets
from epochscope_api.auth.user_tokens import UserTokenVerifier
from epochscope_api.errors import QuotaExceeded
from epochscope_api.http.security_headers import CONTENT_SECURITY_POLICY
from epochscope_api.http.user_slots import UserSlots
from epochscope_api.main import create_app
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import demo_catalog
from epochscope_runtime.object_store import StoreSettings

SECRET = "a-local-secret-of-at-least-32-bytes"
JOB_SECRET = "a-job-token-secret-of-at-least-32-bytes"


def api_settings(**settings: Any) -> ApiSettings:
    placeholders = {
        "environment": "development",
        "job_token_secret": SecretStr(JOB_SECRET),
        "store": StoreSettings(local_dir=Path("unused")),
    }
    return ApiSettings(**(placeholders | settings))


def test_jwks_needs_audience_and_issuer_and_never_shares_users_with_a_shared_secret() -> None:
    provider = {"jwks_url": "http://idp/jwks", "jwt_audience": "epochscope", "jwt_issuer": "https://idp"}
    api_settings(**provider)
    for missing in ("jwt_audience", "jwt_issuer"):
        with pytest.raises(ValidationError, match="needs EPOCHSCOPE_JWT_AUDIENCE and EPOCHSCOPE_JWT_ISSUER"):
            api_settings(**{name: value for name, value in provider.items() if name != missing})
    with pytest.raises(ValidationError, match="not both"):
        api_settings(**provider, jwt_secret=SecretStr(SECRET))


def hs256(**claims: Any) -> str:
    return jwt.encode({name: value for name, value in claims.items() if value is not None}, SECRET, "HS256")


async def test_hs256_tokens_live_at_most_the_configured_lifetime() -> None:
    verifier = UserTokenVerifier(api_settings(jwt_secret=SecretStr(SECRET), jwt_max_lifetime_seconds=3600))
    now = datetime.now(UTC)
    assert await verifier.user_id(mint_user_token(SECRET, "erin", timedelta(minutes=59))) == "erin"
    assert await verifier.user_id(hs256(sub="erin", exp=now + timedelta(minutes=30))) == "erin"  # no iat: from now
    too_long = [
        mint_user_token(SECRET, "erin", timedelta(hours=2)),
        hs256(sub="erin", exp=now + timedelta(days=365)),  # no iat, a year ahead
        hs256(sub="erin", iat=now - timedelta(hours=5), exp=now + timedelta(minutes=5)),  # issued for 5 h
    ]
    for token in too_long:
        with pytest.raises(HTTPException) as raised:
            await verifier.user_id(token)
        assert raised.value.status_code == 401
        assert "longer than the limit of 3600 s" in raised.value.detail


def test_a_stream_ticket_opens_one_job_s_stream_until_it_expires() -> None:
    tickets = StreamTickets(JOB_SECRET, ttl_seconds=60)
    job, other_job = uuid.uuid4(), uuid.uuid4()
    minted = tickets.mint("frank", job)
    verified = tickets.verify(minted.ticket, job)
    assert verified.user_id == "frank" and verified.expires_at == minted.expires_at
    refused = {
        "another job": (minted.ticket, other_job),
        "expired": (StreamTickets(JOB_SECRET, ttl_seconds=-1).mint("frank", job).ticket, job),
        "another server's": (StreamTickets("another-secret-of-at-least-32-bytes", 60).mint("frank", job).ticket, job),
        "a user's bearer token": (mint_user_token(JOB_SECRET, "frank", timedelta(minutes=5)), job),
    }
    for why, (ticket, job_id) in refused.items():
        with pytest.raises(HTTPException) as raised:
            tickets.verify(ticket, job_id)
        assert raised.value.status_code == 401, why


async def test_a_stream_ticket_is_not_a_bearer_token() -> None:
    """Tickets are signed with a key derived from the job-token secret, never the users' key: even where the two
    secrets were the same, a ticket is no bearer token."""
    verifier = UserTokenVerifier(api_settings(jwt_secret=SecretStr(JOB_SECRET)))
    ticket = StreamTickets(JOB_SECRET, ttl_seconds=60).mint("frank", uuid.uuid4()).ticket
    with pytest.raises(HTTPException):
        await verifier.user_id(ticket)


async def body(items: int) -> AsyncIterator[int]:
    for item in range(items):
        yield item


async def test_a_user_holds_at_most_the_cap_of_slots_each_freed_when_its_body_ends() -> None:
    slots = UserSlots("exports_per_user", "exports", maximum=2, retry_after=7)
    first, second = slots.hold("gina", body(3)), slots.hold("gina", body(3))
    with pytest.raises(QuotaExceeded) as raised:
        slots.hold("gina", body(3))
    assert (raised.value.limit, raised.value.retry_after) == ("exports_per_user", 7)
    assert str(raised.value) == "quota exceeded: at most 2 exports at once"
    other = slots.hold("hal", body(1))  # another user is unaffected
    assert [item async for item in first] == [0, 1, 2]  # read to its end: the slot is free
    assert slots.held("gina") == 1
    await anext(second)
    await second.aclose()  # the client went away mid-body: the slot is free too
    assert slots.held("gina") == 0
    assert [item async for item in other] == [0]
    assert slots.held("hal") == 0


@pytest.fixture(name="client")
def client_fixture() -> TestClient:
    """The app without its lifespan: routes that need no database (the UI, the docs, /metrics)."""
    return TestClient(create_app(api_settings(jwt_secret=SecretStr(SECRET), metrics_token=SecretStr("m" * 32))))


def test_every_response_carries_the_browser_headers(client: TestClient) -> None:
    for path in ("/ui/", "/ui/js/app.js", "/ui/missing.js", "/openapi.json"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


def test_the_docs_page_loads_pinned_local_assets_only(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "http" not in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert page.headers["X-Frame-Options"] == "DENY"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000
    assert client.get("/redoc").status_code == 404


def test_metrics_need_the_metrics_bearer_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
    client.get("/ui/js/app.js")  # counted under its route's path template, not its own path
    client.get("/no/such/path")
    served = client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
    assert served.status_code == 200
    counted = {
        line.split(" ")[0]
        for line in served.text.splitlines()
        if line.startswith("http_requests_total{") and not line.endswith(" 0.0")
    }
    assert 'http_requests_total{handler="/ui/{path:path}",method="GET",status="200"}' in counted  # the template
    assert 'http_requests_total{handler="none",method="GET",status="404"}' in counted
    assert not any('handler="/metrics"' in line for line in counted)  # scrapes are not counted
    assert "http_request_duration_seconds_bucket{" in served.text
    unset = TestClient(create_app(api_settings(jwt_secret=SecretStr(SECRET))))
    assert unset.get("/metrics").status_code == 404  # not served without a token to require


def test_users_see_no_model_source() -> None:
    model = demo_catalog()[0].model_copy(update={"source": "dir:/srv/operators/models/secret-path"})
    assert "source" not in model.entry().model_dump()
    assert "secret-path" not in model.entry().model_dump_json()
