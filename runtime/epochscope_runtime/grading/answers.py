"""Reading an answer as JSON, the way users expect a fenced answer to be read, and comparing JSON values."""

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)
MISSING = object()  # no value at a path


def unfence(text: str) -> str:
    """The JSON inside a ```json fence, as users expect a fenced answer to be read; else the text."""
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text.strip()


def parse_json(text: str) -> tuple[Any, str | None]:
    """(the document, None), or (None, why it is not JSON)."""
    try:
        return json.loads(unfence(text)), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"


def value_at(document: Any, path: str) -> Any:
    """The value at a dotted path of keys and list indices; MISSING where there is none."""
    for part in path.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.lstrip("-").isdigit() and -len(document) <= int(part) < len(document):
            document = document[int(part)]
        else:
            return MISSING
    return document


def same_value(left: Any, right: Any, case_sensitive: bool) -> bool:
    """JSON equality; strings stripped (and case-folded unless case-sensitive); true is not 1."""
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.strip(), right.strip()
        return left == right if case_sensitive else left.casefold() == right.casefold()
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return left == right
