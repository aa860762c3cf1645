"""Output validators (JSON, JSON Schema) and quality scores against the ground truth."""

import json
import re
import string
from collections import Counter
from dataclasses import dataclass

from rouge_score import rouge_scorer

from epochscope_schemas.config import ValidatorConfig, ValidatorKind
from epochscope_schemas.events import PredictionScores
from epochscope_schemas.linear_regex import LinearValidator

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@dataclass(frozen=True)
class Validation:
    valid: bool | None  # None: no validators configured
    error: str | None = None


def unfence(text: str) -> str:
    """The JSON inside a ```json fence, as users expect a fenced answer to be read; else the text."""
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text.strip()


class OutputValidator:
    """Checks every prediction against the job's validators; the first failure is the error reported."""

    def __init__(self, validators: list[ValidatorConfig]) -> None:
        self._validators = validators
        # Patterns run in linear time: a user's schema cannot stall training (or a cancel) on a model's answer.
        self._schemas = [LinearValidator(v.json_schema) for v in validators if v.kind == ValidatorKind.JSON_SCHEMA]

    def __call__(self, prediction: str) -> Validation:
        if not self._validators:
            return Validation(None)
        try:
            document = json.loads(unfence(prediction))
        except json.JSONDecodeError as exc:
            return Validation(False, f"not valid JSON: {exc}")
        for schema in self._schemas:
            error = next(iter(schema.iter_errors(document)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return Validation(False, f"does not match the JSON Schema at {where}: {error.message}")
        return Validation(True)


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, truth: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(truth).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, truth: str) -> PredictionScores:
    return PredictionScores(
        exact_match=float(normalize(prediction) == normalize(truth)),
        f1=token_f1(prediction, truth),
        rouge_l=_ROUGE.score(truth, prediction)["rougeL"].fmeasure,
    )
