"""The one size check of an event bound for the bus: refused where it is stored, before anything is committed."""

from epochscope_api.errors import EventTooLarge
from epochscope_schemas.events import Envelope, encode_event


def encoded_within(event: Envelope, max_bytes: int) -> bytes:
    """The event's encoding; EventTooLarge if it exceeds `max_bytes` (the broker's message size)."""
    payload = encode_event(event)
    if len(payload) > max_bytes:
        raise EventTooLarge(len(payload), max_bytes)
    return payload
