"""Bearer tokens verified recently, so that a client's next request skips the signature check: on a light read,
verifying an HS256 JWT (PyJWT decodes the token twice and checks the key's shape) cost more CPU than the page.

Only tokens that passed verification are kept, each until its `exp` and at most `ttl_s` after its check (a JWKS key
the provider rotates out is refused again within that, as its own key set cache refreshes), and at most
`max_entries` of them: the oldest goes first. The tokens stay in this process's memory, as the request held them;
nothing here logs one.
"""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class VerifiedUser:
    user_id: str  # the token's `sub`
    expires_at: float  # the token's `exp`, seconds since the epoch


class VerifiedTokens:
    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[VerifiedUser, float]] = {}  # token -> (its user, valid until), oldest first

    def get(self, token: str) -> VerifiedUser | None:
        """The token's user if it was verified and is still valid: never at or past its `exp` (as PyJWT refuses it)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        user, valid_until = entry
        if time.time() >= valid_until:
            del self._entries[token]
            return None
        return user

    def put(self, token: str, user: VerifiedUser) -> None:
        """Remembers a token that passed verification."""
        if self._max_entries == 0:
            return
        if token not in self._entries and len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (user, min(user.expires_at, time.time() + self._ttl_s))

    def __len__(self) -> int:
        return len(self._entries)
