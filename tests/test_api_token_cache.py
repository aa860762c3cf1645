"""The cache of verified bearer tokens: a repeat request skips the signature check, but never past the token's `exp`,
never longer than EPOCHSCOPE_TOKEN_CACHE_SECONDS, and never for more tokens than EPOCHSCOPE_TOKEN_CACHE_SIZE."""

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import HTTPException
from pydantic import SecretStr

from epochscope.dev_tokens import mint_user_token
from epochscope_api.auth import verified_tokens
from epochscope_api.auth.user_tokens import UserTokenVerifier
from epochscope_api.settings import ApiSettings
from epochscope_runtime.object_store import StoreSettings

SECRET = "a-local-secret-of-at-least-32-bytes"


class Clock:
    """The cache's clock (PyJWT keeps the real one: a token the cache lets go is verified for real again)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(verified_tokens, "time", clock)
    return clock


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT decoded (checked the signature of), in order."""
    checked: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    return checked


def verifier(**settings: Any) -> UserTokenVerifier:
    placeholders = {"job_token_secret": SecretStr("unused"), "store": StoreSettings(local_dir=Path("unused"))}
    return UserTokenVerifier(
        ApiSettings(environment="development", jwt_secret=SecretStr(SECRET), **placeholders, **settings)
    )


def token(user_id: str, ttl_s: float = 3600) -> str:
    return mint_user_token(SECRET, user_id, timedelta(seconds=ttl_s))


async def test_a_verified_token_is_checked_once_then_again_at_its_expiry(
    clock: Clock, signature_checks: list[str]
) -> None:
    check = verifier(token_cache_seconds=7200)
    alice = token("alice", ttl_s=600)
    assert [await check.user_id(alice) for _ in range(3)] == ["alice"] * 3
    assert signature_checks == [alice]
    clock.now += 599
    await check.user_id(alice)
    assert signature_checks == [alice]
    clock.now += 1  # at `exp`: the cache lets it go (PyJWT, on the real clock, still accepts it)
    assert await check.user_id(alice) == "alice"
    assert signature_checks == [alice, alice]


async def test_a_verified_token_is_remembered_at_most_the_cache_seconds(
    clock: Clock, signature_checks: list[str]
) -> None:
    check = verifier(token_cache_seconds=30)
    bob = token("bob")
    await check.user_id(bob)
    clock.now += 29
    await check.user_id(bob)
    assert len(signature_checks) == 1
    clock.now += 1
    await check.user_id(bob)
    assert len(signature_checks) == 2


async def test_the_cache_holds_at_most_its_size_the_oldest_going_first(signature_checks: list[str]) -> None:
    check = verifier(token_cache_size=2)
    first, second, third = token("u1"), token("u2"), token("u3")
    for each in (first, second, third, third, second, first):
        await check.user_id(each)
    assert signature_checks == [first, second, third, first]  # the first went when the third came


async def test_size_zero_remembers_nothing_and_a_refused_token_is_never_remembered(signature_checks: list[str]) -> None:
    check = verifier(token_cache_size=0)
    carol = token("carol")
    await check.user_id(carol)
    await check.user_id(carol)
    assert signature_checks == [carol, carol]
    forged = mint_user_token("another-secret-of-at-least-32-bytes", "carol", timedelta(hours=1))
    remembering = verifier()
    for _ in range(2):
        with pytest.raises(HTTPException) as refused:
            await remembering.user_id(forged)
        assert refused.value.status_code == 401
