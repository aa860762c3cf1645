"""Which secrets a service refuses to start with in production: short ones and known placeholders.

`EPOCHSCOPE_ENVIRONMENT` is `production` unless set to `development` (the local stack and the tests do): a
deployment that forgets the setting gets the strict checks, not the lax ones.
"""

from enum import StrEnum

MIN_SECRET_BYTES = 32
PLACEHOLDERS = frozenset(
    {"replace_me", "replace-me", "change-me", "changeme", "change_me", "secret", "password", "unused", "example",
     "test", "dev", "epochscope", "epochscope_api", "epochscope_writer", "postgres", "admin"}
)  # fmt: skip


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


def weak_secret(name: str, value: str) -> str | None:
    """Why `value` is not fit to be the production secret `name`, or None."""
    if value.strip().lower() in PLACEHOLDERS or "replace" in value.lower() or "changeme" in value.lower():
        return f"{name} is a placeholder; set a random secret of at least {MIN_SECRET_BYTES} bytes"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"{name} is shorter than {MIN_SECRET_BYTES} bytes; set a random secret at least that long"
    return None


def refuse_weak_secrets(environment: Environment, secrets: dict[str, str | None]) -> None:
    """In production, a ValueError naming every weak secret (unset ones are the settings' own business)."""
    if environment != Environment.PRODUCTION:
        return
    problems = [
        problem for name, value in secrets.items() if value is not None and (problem := weak_secret(name, value))
    ]
    if problems:
        reasons = "; ".join(problem for problem in problems if problem)
        raise ValueError(f"{reasons} (or EPOCHSCOPE_ENVIRONMENT=development on a developer's machine)")
