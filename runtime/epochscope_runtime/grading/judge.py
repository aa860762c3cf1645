"""A job's judgement of one answer: every grader's verdict, and what a prediction carries from them.

`valid` is derived from the format graders (json_parse and json_schema, the kinds the older `validators` become at
submission): passed every one of them, and null for a job without any. `validation_error` is the reason of the
first that failed. `scores` are the built-in similarities to the ground truth (the same `similarity` a
text_similarity grader uses).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from epochscope_runtime.grading.graders import Grader
from epochscope_runtime.grading.similarity import similarity
from epochscope_schemas.events import PredictionScores
from epochscope_schemas.graders import (
    GROUND_TRUTH,
    Grade,
    GraderConfig,
    GraderSummary,
    JsonParseGrader,
    JsonSchemaGrader,
)
from epochscope_schemas.graders import SimilarityMetric as Metric

FORMAT_GRADERS = (JsonParseGrader, JsonSchemaGrader)


@dataclass(frozen=True)
class Judgement:
    grades: dict[str, Grade]  # by grader name; a grader without a reference to compare with is absent
    valid: bool | None
    validation_error: str | None
    scores: PredictionScores | None  # None without a ground truth


class Judge:
    """Every grader of a job, built once; called once per answer.

    Args:
        configs: the job's graders (`predictions.graders`, the validators among them since submission).
    """

    def __init__(self, configs: Sequence[GraderConfig]) -> None:
        self.graders = [Grader(config) for config in configs]
        self._format = {grader.name for grader in self.graders if isinstance(grader.config, FORMAT_GRADERS)}

    def __call__(self, prompt: str, answer: str, references: Mapping[str, Any]) -> Judgement:
        grades: dict[str, Grade] = {}
        for grader in self.graders:
            verdict = grader(prompt, answer, references)
            if verdict is not None:
                grades[grader.name] = Grade(score=verdict.score, passed=verdict.passed, error=verdict.reason)
        failed = [grades[name] for name in grades if name in self._format and not grades[name].passed]
        truth = references.get(GROUND_TRUTH)
        return Judgement(
            grades=grades,
            valid=None if not self._format else not failed,
            validation_error=failed[0].error if failed else None,
            scores=None if truth is None else builtin_scores(answer, str(truth)),
        )


def builtin_scores(answer: str, truth: str) -> PredictionScores:
    return PredictionScores(
        exact_match=similarity(Metric.EXACT_MATCH, answer, truth),
        f1=similarity(Metric.F1, answer, truth),
        rouge_l=similarity(Metric.ROUGE_L, answer, truth),
    )


def summarize_grades(graded: Sequence[Mapping[str, Grade]]) -> dict[str, GraderSummary]:
    """Per grader over a set of answers (a round, a training step): answers graded, passed, and the mean score."""
    by_grader: dict[str, list[Grade]] = {}
    for grades in graded:
        for name, grade in grades.items():
            by_grader.setdefault(name, []).append(grade)
    return {
        name: GraderSummary(
            graded=len(items),
            passed=sum(1 for grade in items if grade.passed),
            mean_score=min(sum(grade.score for grade in items) / len(items), 1.0),
        )
        for name, items in by_grader.items()
    }
