"""Opaque keyset cursors: the last row's sort key, base64-encoded JSON."""

import base64
import json
from typing import Any

from fastapi import HTTPException, status


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="cursor: not a cursor from this API") from exc
    if not isinstance(key, list) or len(key) != arity:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="cursor: not a cursor from this API")
    return key
