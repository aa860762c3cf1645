"""Graders: each judges one answer, on its own, the same way for every caller (a prediction round, a training
method's reward, the API). Pure Python, no torch.

`Grader(config)(prompt, answer, references)` gives a `Verdict` (score in [0, 1], passed at the grader's threshold,
the reason where it is not 1), or None when the grader has nothing to compare with. `references` maps reference
field names to values; the ground truth is the default reference (`GROUND_TRUTH`). A grader that fails unexpectedly
gives 0 with the reason: grading never stops its caller.
"""

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from epochscope_runtime.grading.answers import MISSING, parse_json, same_value, value_at
from epochscope_runtime.grading.similarity import similarity
from epochscope_schemas.graders import (
    GraderConfig,
    JsonFieldGrader,
    JsonParseGrader,
    JsonSchemaGrader,
    RegexGrader,
    StringCheckGrader,
    StringOperation,
    TextSimilarityGrader,
)
from epochscope_schemas.linear_regex import LinearValidator, compile_linear

log = logging.getLogger("epochscope.grading")

REASON_MAX = 500


class Verdict(NamedTuple):
    """One grader's judgement of one answer."""

    score: float  # in [0, 1]
    passed: bool  # score >= the grader's threshold
    reason: str | None  # why the score is not 1, where there is a reason


_Scored = tuple[float, str | None]  # (score, reason)
_Check = Callable[[str, str | None], _Scored | None]  # (answer, reference) -> scored, or None: not graded


class Grader:
    """One configured grader, built once (schemas and patterns compiled), called once per answer.

    Args:
        config: the grader's config (`epochscope_schemas.graders`).
    """

    def __init__(self, config: GraderConfig) -> None:
        self.config = config
        self.name = config.name
        self._check = _BUILDERS[type(config)](config)

    def __call__(self, prompt: str, answer: str, references: Mapping[str, Any]) -> Verdict | None:
        """The verdict on `answer` (to `prompt`) against `references`; None when it needs a reference there is
        none of. No grader type reads the prompt yet; it is part of the call for graders that will."""
        reference = references.get(self.config.reference_field)
        try:
            scored = self._check(answer, None if reference is None else str(reference))
        except Exception as exc:  # noqa: BLE001  one grader's bug must not fail the caller
            log.exception("grader %s failed", self.name)
            scored = (0.0, f"grader failed: {type(exc).__name__}: {exc}")
        if scored is None:
            return None
        score, reason = scored
        return Verdict(score, score >= self.config.threshold, reason[:REASON_MAX] if reason else None)


def _json_parse(config: JsonParseGrader) -> _Check:
    def check(answer: str, reference: str | None) -> _Scored:
        error = parse_json(answer)[1]
        return (0.0, error) if error else (1.0, None)

    return check


def _json_schema(config: JsonSchemaGrader) -> _Check:
    # Patterns run in linear time: a user's schema cannot stall training (or a cancel) on a model's answer.
    schema = LinearValidator(config.json_schema)

    def check(answer: str, reference: str | None) -> _Scored:
        document, error = parse_json(answer)
        if error:
            return 0.0, error
        problem = next(iter(schema.iter_errors(document)), None)
        if problem is None:
            return 1.0, None
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        return 0.0, f"does not match the JSON Schema at {where}: {problem.message}"

    return check


_STRING_OPS: dict[StringOperation, Callable[[str, str], bool]] = {
    StringOperation.EQUALS: str.__eq__,
    StringOperation.NOT_EQUALS: str.__ne__,
    StringOperation.CONTAINS: str.__contains__,
    StringOperation.STARTS_WITH: str.startswith,
    StringOperation.ENDS_WITH: str.endswith,
}


def _string_check(config: StringCheckGrader) -> _Check:
    operation = _STRING_OPS[config.operation]

    def check(answer: str, reference: str | None) -> _Scored | None:
        expected = config.reference if config.reference is not None else reference
        if expected is None:
            return None
        text, expected = answer.strip(), expected.strip()
        if not config.case_sensitive:
            text, expected = text.casefold(), expected.casefold()
        if operation(text, expected):
            return 1.0, None
        if config.operation == StringOperation.NOT_EQUALS:
            return 0.0, f"equals {expected!r}"
        return 0.0, f"does not {config.operation.value} {expected!r}"

    return check


def _regex(config: RegexGrader) -> _Check:
    pattern = compile_linear(config.pattern if config.case_sensitive else f"(?i:{config.pattern})")
    match = pattern.fullmatch if config.full_match else pattern.search

    def check(answer: str, reference: str | None) -> _Scored:
        return (1.0, None) if match(answer) is not None else (0.0, f"does not match {config.pattern!r}")

    return check


def _json_field(config: JsonFieldGrader) -> _Check:
    def check(answer: str, reference: str | None) -> _Scored | None:
        expected = MISSING if reference is None else value_at(parse_json(reference)[0], config.path)
        if expected is MISSING:
            return None  # nothing to compare with: not graded
        document, error = parse_json(answer)
        if error:
            return 0.0, error
        found = value_at(document, config.path)
        if found is MISSING:
            return 0.0, f"no value at {config.path}"
        if same_value(found, expected, config.case_sensitive):
            return 1.0, None
        return 0.0, f"{config.path} is {json.dumps(found)[:200]}, expected {json.dumps(expected)[:200]}"

    return check


def _text_similarity(config: TextSimilarityGrader) -> _Check:
    def check(answer: str, reference: str | None) -> _Scored | None:
        return None if reference is None else (similarity(config.metric, answer, reference), None)

    return check


_BUILDERS: dict[type, Callable[[Any], _Check]] = {
    JsonParseGrader: _json_parse,
    JsonSchemaGrader: _json_schema,
    StringCheckGrader: _string_check,
    RegexGrader: _regex,
    JsonFieldGrader: _json_field,
    TextSimilarityGrader: _text_similarity,
}
