"""OpenAI-style ids over Epochscope's UUIDs: `file-<hex>` is a dataset, `ftjob-<hex>` a job, `ftckpt-<hex>` a
checkpoint. A bare UUID (Epochscope's own id) is accepted too, so a dataset uploaded through /v1/datasets is usable
as a file by the id Epochscope gave it."""

import uuid

from epochscope_api.openai_compat.errors import OpenAIError

FILE = "file-"
JOB = "ftjob-"
CHECKPOINT = "ftckpt-"
_NOUNS = {FILE: "file", JOB: "fine-tuning job", CHECKPOINT: "checkpoint"}


def openai_id(prefix: str, value: uuid.UUID) -> str:
    return f"{prefix}{value.hex}"


def parse_id(prefix: str, value: str, param: str | None = None) -> uuid.UUID:
    """The UUID behind `value`. A value that is no id of this kind is a 404 in a path (`param` None: no such
    object, as OpenAI answers), a 400 naming `param` in a request body."""
    text = value.removeprefix(prefix)
    try:
        return uuid.UUID(text)
    except ValueError:
        if param is None:
            raise not_found(prefix, value) from None
        raise OpenAIError(400, f"invalid {_NOUNS[prefix]} id: {value[:100]!r}", param=param) from None


def not_found(prefix: str, value: str) -> OpenAIError:
    """OpenAI's 404 for an id the current user has no object for (another user's included)."""
    return OpenAIError(404, f"No such {_NOUNS[prefix]}: {value[:100]!r}", code="not_found")
