"""The job's graders run on every prediction. Pure Python (no torch): unit-tested without a model.

Each grader gives a score in [0, 1] and passes at its threshold. A grader that compares with the ground truth
skips a sample without one (no grade); `json_field` also skips a sample whose ground truth has no value at the
path. A grader that fails unexpectedly gives 0 with the reason: grading never stops a round.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

import sacrebleu
from rouge_score import rouge_scorer

from epochscope_schemas.graders import (
    Grade,
    GraderConfig,
    GraderSummary,
    JsonFieldGrader,
    JsonParseGrader,
    JsonSchemaGrader,
    RegexGrader,
    SimilarityMetric,
    StringCheckGrader,
    StringOperation,
    TextSimilarityGrader,
)
from epochscope_schemas.linear_regex import LinearValidator, compile_linear
from epochscope_trainer.job.quality import normalize, token_f1, unfence

log = logging.getLogger("epochscope.trainer.graders")

ERROR_MAX = 500
Verdict = tuple[float, str | None]  # (score, why it is not 1) ; None: not graded
Check = Callable[[str, str | None], Verdict | None]


class _UnicodeTokens:
    """ROUGE's tokens: unicode-aware words (rouge-score's own tokenizer drops every non-ASCII letter)."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return normalize(text).split()


_ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_UnicodeTokens())
_ROUGE_KEYS = {
    SimilarityMetric.ROUGE_1: "rouge1",
    SimilarityMetric.ROUGE_2: "rouge2",
    SimilarityMetric.ROUGE_L: "rougeL",
}


def similarity(metric: SimilarityMetric, prediction: str, truth: str) -> float:
    """The metric of the prediction against the ground truth, in [0, 1]."""
    if metric == SimilarityMetric.EXACT_MATCH:
        return float(normalize(prediction) == normalize(truth))
    if metric == SimilarityMetric.F1:
        return token_f1(prediction, truth)
    if metric in _ROUGE_KEYS:
        if not normalize(prediction) and not normalize(truth):
            return 1.0
        return _ROUGE.score(truth, prediction)[_ROUGE_KEYS[metric]].fmeasure
    if not prediction.strip() or not truth.strip():
        return float(prediction.strip() == truth.strip())
    if metric == SimilarityMetric.BLEU:
        value = sacrebleu.sentence_bleu(prediction, [truth]).score
    else:
        value = sacrebleu.sentence_chrf(prediction, [truth]).score
    return min(max(value / 100.0, 0.0), 1.0)


def _parse(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(unfence(text)), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"


_MISSING = object()


def value_at(document: Any, path: str) -> Any:
    """The value at a dotted path of keys and list indices; _MISSING where there is none."""
    for part in path.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.lstrip("-").isdigit() and -len(document) <= int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


def _same(left: Any, right: Any, case_sensitive: bool) -> bool:
    """JSON equality; strings stripped (and case-folded unless case-sensitive); true is not 1."""
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.strip(), right.strip()
        return left == right if case_sensitive else left.casefold() == right.casefold()
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return left == right


def _json_parse(config: JsonParseGrader) -> Check:
    def check(prediction: str, truth: str | None) -> Verdict:
        error = _parse(prediction)[1]
        return (0.0, error) if error else (1.0, None)

    return check


def _json_schema(config: JsonSchemaGrader) -> Check:
    schema = LinearValidator(config.json_schema)

    def check(prediction: str, truth: str | None) -> Verdict:
        document, error = _parse(prediction)
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
    StringOperation.CONTAINS: str.__contains__,
    StringOperation.STARTS_WITH: str.startswith,
    StringOperation.ENDS_WITH: str.endswith,
}


def _string_check(config: StringCheckGrader) -> Check:
    operation = _STRING_OPS[config.operation]

    def check(prediction: str, truth: str | None) -> Verdict | None:
        reference = config.reference if config.reference is not None else truth
        if reference is None:
            return None
        text, reference = prediction.strip(), reference.strip()
        if not config.case_sensitive:
            text, reference = text.casefold(), reference.casefold()
        return (1.0, None) if operation(text, reference) else (0.0, f"does not {config.operation.value} {reference!r}")

    return check


def _regex(config: RegexGrader) -> Check:
    pattern = compile_linear(config.pattern if config.case_sensitive else f"(?i:{config.pattern})")
    match = pattern.fullmatch if config.full_match else pattern.search

    def check(prediction: str, truth: str | None) -> Verdict:
        return (1.0, None) if match(prediction) is not None else (0.0, f"does not match {config.pattern!r}")

    return check


def _json_field(config: JsonFieldGrader) -> Check:
    def check(prediction: str, truth: str | None) -> Verdict | None:
        expected = _MISSING if truth is None else value_at(_parse(truth)[0], config.path)
        if expected is _MISSING:
            return None  # nothing to compare with: not graded
        document, error = _parse(prediction)
        if error:
            return 0.0, error
        found = value_at(document, config.path)
        if found is _MISSING:
            return 0.0, f"no value at {config.path}"
        if _same(found, expected, config.case_sensitive):
            return 1.0, None
        return 0.0, f"{config.path} is {json.dumps(found)[:200]}, expected {json.dumps(expected)[:200]}"

    return check


def _text_similarity(config: TextSimilarityGrader) -> Check:
    return lambda prediction, truth: None if truth is None else (similarity(config.metric, prediction, truth), None)


_BUILDERS: dict[type, Callable[[Any], Check]] = {
    JsonParseGrader: _json_parse,
    JsonSchemaGrader: _json_schema,
    StringCheckGrader: _string_check,
    RegexGrader: _regex,
    JsonFieldGrader: _json_field,
    TextSimilarityGrader: _text_similarity,
}


class Grading:
    """Every grader of a job, built once (schemas and patterns compiled); called once per prediction."""

    def __init__(self, graders: list[GraderConfig]) -> None:
        self._graders = [(grader, _BUILDERS[type(grader)](grader)) for grader in graders]

    def __call__(self, prediction: str, truth: str | None) -> dict[str, Grade]:
        grades: dict[str, Grade] = {}
        for grader, check in self._graders:
            try:
                verdict = check(prediction, truth)
            except Exception as exc:  # noqa: BLE001  one grader's bug must not fail the round
                log.exception("grader %s failed", grader.name)
                verdict = (0.0, f"grader failed: {type(exc).__name__}: {exc}")
            if verdict is not None:
                score, error = verdict
                passed = score >= grader.threshold
                grades[grader.name] = Grade(score=score, passed=passed, error=error[:ERROR_MAX] if error else None)
        return grades


def summarize_grades(graded: list[dict[str, Grade]]) -> dict[str, GraderSummary]:
    """Per grader over a round: predictions graded, passed, and the mean score."""
    scores: dict[str, list[Grade]] = {}
    for grades in graded:
        for name, grade in grades.items():
            scores.setdefault(name, []).append(grade)
    return {
        name: GraderSummary(
            graded=len(items),
            passed=sum(1 for grade in items if grade.passed),
            mean_score=min(sum(grade.score for grade in items) / len(items), 1.0),
        )
        for name, items in scores.items()
    }
