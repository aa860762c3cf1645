"""Users' bearer tokens (JWTs), verified on first use and then remembered for a while (verified_tokens.py); user id =
`sub`; local ones come from epochscope/dev_tokens.py.

Tokens are HS256 with EPOCHSCOPE_JWT_SECRET (local stacks, `epochscope token`), or signed by an
identity provider whose public keys are at EPOCHSCOPE_JWKS_URL, never both (settings refuse it: the
two issuers' `sub`s would name the same users). Each key accepts only its own algorithms (no HS256/RS256
confusion); a provider's token must name this API (`aud`) and the provider (`iss`); an HS256 token may
live at most EPOCHSCOPE_JWT_MAX_LIFETIME_SECONDS.
"""

import asyncio
import threading
import time
from typing import Any

import jwt
from fastapi import HTTPException, status

from epochscope_api.auth.verified_tokens import VerifiedTokens, VerifiedUser
from epochscope_api.settings import ApiSettings

HS256 = "HS256"


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


class UserTokenVerifier:
    """Verifies users' bearer tokens as the settings say; one per app (the JWKS client caches the key set).

    Users' tokens only: the writer verifies job tokens, which the API mints for one job's events."""

    def __init__(self, settings: ApiSettings) -> None:
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, lifespan=settings.jwks_cache_seconds, timeout=10)
            if settings.jwks_url
            else None
        )
        self._jwks_algorithms = settings.jwks_algorithms
        self._jwks_refetch_s = settings.jwks_refetch_min_seconds
        self._last_refetch = -settings.jwks_refetch_min_seconds
        self._refetch_lock = threading.Lock()
        self._max_lifetime_s = settings.jwt_max_lifetime_seconds
        self._options: dict[str, Any] = {"require": ["sub", "exp"]}
        self._provider_options: dict[str, Any] = {"require": ["sub", "exp", "aud", "iss"]}
        self._provider_claims: dict[str, Any] = {"audience": settings.jwt_audience, "issuer": settings.jwt_issuer}
        self._verified = VerifiedTokens(settings.token_cache_size, settings.token_cache_seconds)

    async def user_id(self, token: str) -> str:
        """The token's `sub`; a 401 for anything not signed by a configured key, expired, or for someone else."""
        return (await self.verify(token)).user_id

    async def verify(self, token: str) -> VerifiedUser:
        """The token's user and expiry; a 401 as user_id says. A token verified lately is taken from the cache."""
        user = self._verified.get(token)
        if user is None:
            user = await self._verify_signed(token)
            self._verified.put(token, user)
        return user

    async def _verify_signed(self, token: str) -> VerifiedUser:
        try:
            if jwt.get_unverified_header(token).get("alg") == HS256 and self._secret is not None:
                claims = jwt.decode(token, self._secret, algorithms=[HS256], options=self._options)
                self._check_lifetime(claims)
            elif self._jwks is not None:
                # The key set is cached; a miss fetches it over the network, so never on the event loop.
                key = await asyncio.to_thread(self._signing_key, token)
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=self._jwks_algorithms,
                    options=self._provider_options,
                    **self._provider_claims,
                )
            else:
                raise jwt.InvalidAlgorithmError("the token's algorithm is not accepted here")
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid token: {exc}") from exc
        user_id = claims["sub"]
        if not isinstance(user_id, str) or not user_id:
            raise unauthorized("token has no user")
        return VerifiedUser(user_id, float(claims["exp"]))

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """An HS256 token lives at most max_lifetime: from its `iat` when it has one, and from now in any case."""
        longest = self._max_lifetime_s
        if claims["exp"] - time.time() > longest or claims["exp"] - claims.get("iat", claims["exp"]) > longest:
            raise jwt.InvalidTokenError(f"the token lives longer than the limit of {longest} s")

    def _signing_key(self, token: str) -> jwt.PyJWK:
        """The provider's key for the token's `kid`, from the cached key set. An unknown `kid` refetches the set
        (keys rotate) at most once per jwks_refetch_min_seconds, so tokens with made-up `kid`s cannot make the
        API fetch the key set on every request."""
        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.get_signing_keys():
            if key.key_id == kid:
                return key
        with self._refetch_lock:
            if time.monotonic() - self._last_refetch < self._jwks_refetch_s:
                raise jwt.PyJWKClientError(f"no key with kid {kid!r} in the identity provider's key set")
            self._last_refetch = time.monotonic()
        for key in self._jwks.get_signing_keys(refresh=True):
            if key.key_id == kid:
                return key
        raise jwt.PyJWKClientError(f"no key with kid {kid!r} in the identity provider's key set")
