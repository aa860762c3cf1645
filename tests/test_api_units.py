"""Pure parts of the API: the committed OpenAPI document, the cost estimate, cursors, stream positions, the
mapping of domain errors to HTTP responses and token verification (against a JWKS served from this process)."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from epochscope.dev_tokens import mint_user_token
from epochscope_api.auth.user_tokens import UserTokenVerifier
from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.errors import BadCursor, DomainError, JobNotFound, SampleNotFound
from epochscope_api.jobs.estimate import SamplePreview, count_rounds, estimate, train_rows
from epochscope_api.jobs.validation import check_job_config
from epochscope_api.live.hub import ALL_CHANGE_KINDS, kinds_of
from epochscope_api.main import DOMAIN_ERROR_STATUS, create_app, status_of
from epochscope_api.openapi_export import openapi_document, render
from epochscope_api.service_layer.live import parse_position
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel
from epochscope_runtime.object_store import StoreSettings
from epochscope_schemas.config import JobConfig

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "schemas" / "openapi.json"


def api_settings(**settings: Any) -> ApiSettings:
    """Settings with placeholders for what these tests do not use: the job token key and the store."""
    placeholders = {"job_token_secret": SecretStr("unused"), "store": StoreSettings(local_dir=Path("unused"))}
    return ApiSettings(**({"environment": "development"} | placeholders | settings))


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.read_text() == render(openapi_document()), "run `make schemas` and commit schemas/openapi.json"


def test_every_body_is_a_named_component_errors_share_one_model_and_operation_ids_are_readable() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["operationId"].replace("_", "").isalpha(), (method, path)
            bodies = [("request", operation.get("requestBody", {})), *operation["responses"].items()]
            for code, body in bodies:
                for media_type, media in body.get("content", {}).items():
                    schema = media.get("schema", {})
                    if media_type == "multipart/form-data":  # the upload: one binary part, streamed by hand
                        assert schema["properties"]["file"]["format"] == "binary", (method, path)
                        continue
                    if media_type == "application/octet-stream":  # a download: bytes, no model
                        assert schema == {"type": "string", "format": "binary"}, (method, path)
                        continue
                    assert "$ref" in schema or schema == {}, (method, path, media)
                    if code.startswith("4") or code == "default":  # one error model per surface
                        error_model = "OpenAIErrorBody" if path.startswith("/openai/") else "ErrorResponse"
                        assert schema == {"$ref": f"#/components/schemas/{error_model}"}, (method, path, code)


DATASET_ID = "0d8f2a1e-3b7e-4a37-9a62-2f1a4d9d0c11"
MODEL = CatalogModel(
    id="m",
    display_name="M",
    source="dir:/m",
    parameters=1,
    context_length=8,
    chat_template=False,
    tokens_per_second=64.0,
    prefill_tokens_per_second=1000.0,
)


def job(epochs: int = 3, **predictions: object) -> JobConfig:
    config = {"enabled": True, "sample_count": 16, "max_new_tokens": 64, "baseline_round": False} | predictions
    return JobConfig(model="m", dataset_id=DATASET_ID, num_epochs=epochs, batch_size=10, predictions=config)


def previews(count: int, prompt_tokens: int | None = 10) -> list[SamplePreview]:
    return [
        SamplePreview(sample_id=f"row-{i:06d}", line=i + 1, prompt="p", ground_truth=None, prompt_tokens=prompt_tokens)
        for i in range(count)
    ]


def test_estimate_per_epoch() -> None:
    result = estimate(job(), usable_rows=1000, samples=previews(16), model=MODEL, price_per_hour=3.6)
    assert (result.rounds, result.predictions, result.generated_tokens, result.prompt_tokens) == (3, 48, 3072, 480)
    assert result.seconds == 48.48  # 3072 generated at 64/s, 480 prompt tokens at 1000/s
    assert result.price_usd == 0.0485


def test_estimate_counts_the_baseline_round() -> None:
    """A 2-epoch job with the default baseline round has 3 rounds."""
    assert estimate(job(epochs=2, baseline_round=True), 1000, previews(16), MODEL, 1.0).rounds == 3


def test_estimate_every_n_steps_after_an_eval_hold_out_and_disabled() -> None:
    assert count_rounds(job(sample_frequency="steps", step_interval=40), 1000) == 7  # 300 steps // 40
    held_out = job(sample_frequency="steps", step_interval=40).model_copy(update={"eval_fraction": 0.1})
    assert (train_rows(held_out, 1000), count_rounds(held_out, 1000)) == (900, 6)  # 270 steps // 40
    assert estimate(job(enabled=False), 1000, previews(16), MODEL, 1.0).generated_tokens == 0


def test_estimate_without_a_tokenizer_has_no_prompt_tokens() -> None:
    assert estimate(job(), 1000, previews(16, prompt_tokens=None), MODEL, 1.0).prompt_tokens is None


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor([3, "row-000001"]), INT4, text) == [3, "row-000001"]
    foreign = (
        "not-base64!",
        encode_cursor([1]),
        encode_cursor({"a": 1}),
        encode_cursor(["3", "row"]),  # a string where the step goes
        encode_cursor([2**31, "row"]),  # no Postgres integer
        encode_cursor([True, "row"]),
        encode_cursor([3, "nul\x00"]),  # no Postgres text
    )
    for garbage in foreign:
        with pytest.raises(BadCursor) as raised:
            decode_cursor(garbage, INT4, text, name="cursor")
        assert status_of(raised.value) == 422 and str(raised.value).startswith("cursor:")


def test_stream_position_round_trip() -> None:
    assert parse_position(None) == [0, -1, -1, 0, 0]  # predictions, rounds, progress, warnings, rollouts
    assert parse_position(encode_cursor([120, 7, 500, 3, 9])) == [120, 7, 500, 3, 9]
    with pytest.raises(BadCursor):
        parse_position(encode_cursor([120, 7, 500, 3]))  # a position from before rollouts joined the stream
    with pytest.raises(BadCursor):
        parse_position("120")  # a bare prediction sequence: not a position this stream made


def test_every_domain_error_has_an_http_status() -> None:
    assert set(DomainError.__subclasses__()) == set(DOMAIN_ERROR_STATUS)


@pytest.mark.parametrize(
    ("error", "status_code", "detail"),
    [
        (JobNotFound(), 404, "job not found"),
        (SampleNotFound(), 404, "sample not found"),
        (BadCursor("Last-Event-ID"), 422, "Last-Event-ID: not a cursor from this API"),
    ],
)
def test_a_domain_error_is_answered_with_its_status_and_the_shared_error_model(
    error: DomainError, status_code: int, detail: str
) -> None:
    app = create_app(api_settings(jwt_secret=SecretStr("unused")))

    @app.get("/raises")
    async def raises() -> None:
        raise error

    response = TestClient(app).get("/raises")  # no `with`: no lifespan, so no database or broker
    assert (response.status_code, response.json()) == (status_code, {"detail": detail})


def test_notify_payload_names_what_to_read_again() -> None:
    assert kinds_of('{"job_id": "x", "kind": "progress", "count": 3}') == {"progress"}
    for anything in ("{}", "not json", "[1]", '{"kind": ["round"]}', '{"kind": "unknown"}'):
        assert kinds_of(anything) == ALL_CHANGE_KINDS


def test_a_nul_character_and_a_model_outside_the_catalog_are_field_errors() -> None:
    settings = api_settings(jwt_secret="j" * 32, models=[MODEL])
    config = JobConfig(model="m", dataset_id=DATASET_ID, predictions={"validators": [{"kind": "json_parse"}]})
    assert check_job_config(config, settings) == MODEL
    with pytest.raises(RequestValidationError) as raised:
        check_job_config(config.model_copy(update={"model": "m\x00"}), settings)
    assert [error["loc"] for error in raised.value.errors()] == [("body", "model"), ("body", "model")]
    with pytest.raises(RequestValidationError) as raised:
        check_job_config(config.model_copy(update={"model": "/etc/passwd"}), settings)
    assert "catalog" in raised.value.errors()[0]["msg"]


def test_a_grader_named_human_is_refused_at_the_field_the_user_wrote() -> None:
    settings = api_settings(jwt_secret="j" * 32, models=[MODEL])
    graders = [{"name": "ok", "type": "json_parse"}, {"name": "human", "type": "json_parse"}]
    config = JobConfig(model="m", dataset_id=DATASET_ID, predictions={"graders": graders})
    with pytest.raises(RequestValidationError) as raised:
        check_job_config(config, settings)
    assert [error["loc"] for error in raised.value.errors()] == [("body", "predictions", "graders", 1, "name")]
    assert "verdicts" in raised.value.errors()[0]["msg"]


JWKS_FETCHES: Counter[str] = Counter()


@pytest.fixture
def identity_provider() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """(JWKS URL, private key) of a minimal identity provider serving one RSA public key, kid "k1";
    JWKS_FETCHES[url] counts the key-set requests it served."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            JWKS_FETCHES[url] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield url, key
    finally:
        server.shutdown()


LOCAL_SECRET = "a-local-secret-of-at-least-32-bytes"


ISSUER = "https://idp.example"


def verifier(**settings: Any) -> UserTokenVerifier:
    return UserTokenVerifier(api_settings(**settings))


def provider_verifier(url: str, **settings: Any) -> UserTokenVerifier:
    """A verifier of the identity provider at `url`, as the settings require it: audience and issuer named."""
    return verifier(jwks_url=url, jwt_audience="epochscope", jwt_issuer=ISSUER, **settings)


def provider_token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = datetime.now(UTC)
    claims = {"sub": "carol", "aud": "epochscope", "iss": ISSUER, "exp": now + timedelta(minutes=5)} | claims
    return jwt.encode({name: value for name, value in claims.items() if value is not None}, key, "RS256", {"kid": "k1"})


async def test_tokens_from_an_identity_provider_are_verified_against_its_jwks(
    identity_provider: tuple[str, rsa.RSAPrivateKey],
) -> None:
    url, key = identity_provider
    check = provider_verifier(url)
    assert await check.user_id(provider_token(key)) == "carol"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        provider_token(key, aud="someone-else"),
        provider_token(key, aud=None),  # issued by the provider to no application in particular
        provider_token(key, iss="https://another-idp.example"),
        provider_token(key, iss=None),
        provider_token(key, exp=datetime.now(UTC) - timedelta(minutes=1)),
        provider_token(other_key),  # not the provider's key
        mint_user_token("another-secret-of-at-least-32-bytes", "dave", timedelta(minutes=5)),
        "not.a.token",
    ]
    for token in refused:
        with pytest.raises(HTTPException) as raised:
            await check.user_id(token)
        assert raised.value.status_code == 401


async def test_tokens_with_unknown_kids_do_not_make_the_api_fetch_the_key_set_per_request(
    identity_provider: tuple[str, rsa.RSAPrivateKey],
) -> None:
    url, key = identity_provider
    check = provider_verifier(url, jwks_refetch_min_seconds=3600)
    assert await check.user_id(provider_token(key)) == "carol"
    assert JWKS_FETCHES[url] == 1
    claims = {"sub": "x", "aud": "epochscope", "iss": ISSUER, "exp": datetime.now(UTC) + timedelta(minutes=5)}
    for attempt in range(20):
        forged = jwt.encode(claims, key, algorithm="RS256", headers={"kid": f"made-up-{attempt}"})
        with pytest.raises(HTTPException) as raised:
            await check.user_id(forged)
        assert raised.value.status_code == 401
    assert JWKS_FETCHES[url] == 2  # one refetch (keys may have rotated), then none within the interval
    assert await check.user_id(provider_token(key)) == "carol"


async def test_without_a_secret_an_hs256_token_is_refused(identity_provider: tuple[str, rsa.RSAPrivateKey]) -> None:
    url, _ = identity_provider
    forged = mint_user_token("a-guessed-secret-of-at-least-32-bytes", "mallory", timedelta(minutes=5))
    with pytest.raises(HTTPException):
        await provider_verifier(url).user_id(forged)


def test_settings_need_a_way_to_verify_users() -> None:
    with pytest.raises(ValidationError):
        api_settings()
    with pytest.raises(ValidationError):
        api_settings(jwks_url="http://idp", jwt_audience="a", jwt_issuer="i", jwks_algorithms=["HS256"])
