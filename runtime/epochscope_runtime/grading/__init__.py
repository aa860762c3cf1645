"""Judging an answer: one implementation for prediction rounds, training rewards and the API (no torch).

The interface every caller uses: `Grader(config)(prompt, answer, references) -> Verdict | None`, where
`Verdict` is (score, passed, reason) and `references` maps reference field names to values, the ground truth
(`GROUND_TRUTH`) by default. `Judge` runs a job's graders together and derives what a prediction carries.
"""

from epochscope_runtime.grading.graders import Grader, Verdict
from epochscope_runtime.grading.judge import Judge, Judgement, summarize_grades
from epochscope_runtime.grading.similarity import similarity
from epochscope_schemas.graders import GROUND_TRUTH

__all__ = ["GROUND_TRUTH", "Grader", "Judge", "Judgement", "Verdict", "similarity", "summarize_grades"]
