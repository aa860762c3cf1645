"""Opaque keyset cursors: the last row's sort key, base64-encoded JSON.

A cursor comes back from clients, so every part is checked on the way in: anything this API did not
make is a BadCursor (a 422), never a database error.
"""

import base64
import json
from collections.abc import Callable
from typing import Any

from epochscope_api.errors import BadCursor

Part = Callable[[Any], Any]


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _bounded_int(bits: int) -> Part:
    def check(value: Any) -> int:
        if type(value) is not int or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"not a {bits}-bit integer")
        return value

    return check


def text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:  # Postgres text cannot hold NUL
        raise ValueError("not a text")
    return value


INT4 = _bounded_int(32)  # Postgres integer
INT4_MAX = 2**31 - 1
INT8 = _bounded_int(64)  # Postgres bigint


def decode_cursor(cursor: str, *parts: Part, name: str = "cursor") -> list[Any]:
    """The key inside `cursor`, each part converted by its function in `parts`; BadCursor naming `name` if foreign."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list) or len(key) != len(parts):
            raise ValueError("wrong shape")
        return [part(value) for part, value in zip(parts, key, strict=True)]
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadCursor(name) from exc
