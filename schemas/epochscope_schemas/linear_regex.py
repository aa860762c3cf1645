"""Regular expressions from users, run in linear time (RE2), never by a backtracking engine.

A pattern such as `^(a+)+$` takes Python's `re` exponential time on a string of a's ending in `!`, and holds the
interpreter while it does: one JSON Schema in a job config could stall a trainer and make cancel wait. RE2 has no
backtracking (so no lookaround and no backreferences) and matches in time linear in the input. JSON Schema
`pattern` keywords go through it; `patternProperties`, which jsonschema matches with `re` in several keywords, is
refused when a job is submitted.
"""

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the user's error, reported to them, not logged by RE2 on stderr


class UnsafePattern(ValueError):
    """A pattern RE2 cannot run (it needs backtracking: lookaround, backreferences) or that is malformed."""


@lru_cache(maxsize=1024)
def compile_linear(pattern: str) -> Any:
    """The pattern compiled by RE2; UnsafePattern saying why it cannot be."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UnsafePattern(f"pattern {pattern!r} cannot run in linear time (RE2): {reason}") from None


def schema_problems(schema: Any, where: str = "") -> Iterator[str]:
    """Why each part of a JSON Schema cannot be checked in linear time: unsupported patterns, patternProperties."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                try:
                    compile_linear(value)
                except UnsafePattern as exc:
                    yield f"{where or '(root)'}: {exc}"
            elif key == "patternProperties":
                yield f"{where or '(root)'}: patternProperties is not supported (use propertyNames with a pattern)"
            else:
                yield from schema_problems(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from schema_problems(item, f"{where}/{index}")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and compile_linear(pattern).search(instance) is None:
        yield ValidationError(f"{instance[:200]!r} does not match {pattern!r}")


LinearValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})
