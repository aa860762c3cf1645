"""A validation error's location as the `param` OpenAI names: the request's field path, dotted, without pydantic's
tags for the member of a union that failed (`n_epochs.int`, `n_epochs.literal['auto']`)."""

_UNION_MEMBERS = {"int", "float", "str", "bool", "none"}


def param_path(loc: tuple[str | int, ...] | list[str | int]) -> str | None:
    parts = [str(part) for part in loc if not _union_member(str(part))]
    return ".".join(parts) or None


def _union_member(part: str) -> bool:
    return part in _UNION_MEMBERS or any(mark in part for mark in "['(")
