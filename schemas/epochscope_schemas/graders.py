"""Graders: what "correct" means for a job's predictions, each a named score in [0, 1] and a pass/fail.

A job lists them in `predictions.graders`. Every grader scores each prediction in [0, 1]; the prediction passes
that grader when the score reaches the grader's `threshold`. Graders that compare with the ground truth skip a
sample without one. The older `predictions.validators` become graders when the config is submitted
(`validator_graders`): `{"kind": "json_parse"}` is the grader `{"type": "json_parse", "name": "json_parse"}` and
`{"kind": "json_schema", "json_schema": S}` is `{"type": "json_schema", "name": "json_schema", "json_schema": S}`
(a second one of a kind is named `json_schema_2`, and so on). The code that runs them is
`epochscope_runtime.grading`.
"""

from enum import StrEnum
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from epochscope_schemas.linear_regex import UnsafePattern, compile_linear, schema_problems

GRADER_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
GraderName = Annotated[
    str,
    Field(
        pattern=GRADER_NAME_PATTERN,
        description="Unique within the job: the key of this grader's score in predictions, rounds and exports.",
    ),
]
GROUND_TRUTH = "ground_truth"  # the reference field a grader compares with unless told otherwise
Threshold = Annotated[float, Field(ge=0.0, le=1.0, description="A score at or above this passes.")]


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: GraderName
    threshold: Threshold = 1.0
    reference_field: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="The row field this grader compares with (a GRPO row's `label`, say); the ground truth "
            "by default.",
        ),
    ] = GROUND_TRUTH


class JsonParseGrader(_Grader):
    """1 when the prediction is JSON (a ```json fence is read as users expect), else 0."""

    type: Literal["json_parse"] = "json_parse"


class JsonSchemaGrader(_Grader):
    """1 when the prediction is JSON matching the schema (patterns run in linear time, RE2), else 0."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _checkable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        problems = list(schema_problems(schema))
        if problems:
            raise ValueError(problems[0])
        return schema


class StringOperation(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"


class StringCheckGrader(_Grader):
    """1 when the prediction (stripped) equals, does not equal, contains, starts or ends with the reference, else 0."""

    type: Literal["string_check"] = "string_check"
    operation: Annotated[StringOperation, Field(strict=False)] = StringOperation.EQUALS
    reference: Annotated[
        str | None, Field(max_length=10_000, description="The string to check against; null: the ground truth.")
    ] = None
    case_sensitive: bool = True


class RegexGrader(_Grader):
    """1 when the pattern matches the prediction (anywhere, or the whole of it with full_match), else 0.
    Run by RE2 in linear time: no lookaround, no backreferences."""

    type: Literal["regex"] = "regex"
    pattern: Annotated[str, Field(min_length=1, max_length=2000)]
    full_match: bool = False
    case_sensitive: bool = True

    @field_validator("pattern")
    @classmethod
    def _linear(cls, pattern: str) -> str:
        try:
            compile_linear(pattern)
        except UnsafePattern as exc:
            raise ValueError(str(exc)) from None
        return pattern


class JsonFieldGrader(_Grader):
    """1 when the prediction's JSON value at `path` equals the ground truth's value at the same path, else 0:
    field accuracy for structured outputs. A path is dot-separated keys and list indices (`booking.city`,
    `items.0.sku`); strings compare stripped, case-sensitive unless `case_sensitive` is false."""

    type: Literal["json_field"] = "json_field"
    path: Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$", max_length=500)]
    case_sensitive: bool = True


class SimilarityMetric(StrEnum):
    EXACT_MATCH = "exact_match"
    F1 = "f1"
    ROUGE_1 = "rouge_1"
    ROUGE_2 = "rouge_2"
    ROUGE_L = "rouge_l"
    BLEU = "bleu"
    CHRF = "chrf"
    FUZZY_MATCH = "fuzzy_match"


class TextSimilarityGrader(_Grader):
    """A similarity of the prediction to the ground truth in [0, 1]: normalized exact match, token F1,
    ROUGE-1/2/L F-measure, sentence BLEU or chrF (sacrebleu, divided by 100), or fuzzy_match (characters in common,
    as rapidfuzz's `fuzz.ratio` / 100: twice the longest common subsequence over both lengths)."""

    type: Literal["text_similarity"] = "text_similarity"
    metric: Annotated[SimilarityMetric, Field(strict=False)] = SimilarityMetric.F1
    threshold: Threshold = 0.5


GraderConfig = Annotated[
    JsonParseGrader | JsonSchemaGrader | StringCheckGrader | RegexGrader | JsonFieldGrader | TextSimilarityGrader,
    Field(discriminator="type"),
]
MAX_VALIDATORS = 8  # the older `validators` a config may list
MAX_GRADERS = 16 + MAX_VALIDATORS  # a job's graders, those its validators became included


def validator_graders(validators: list[Any]) -> list[JsonParseGrader | JsonSchemaGrader]:
    """The graders that the older `validators` field stands for, named after their kind (json_schema_2, ...)."""
    graders: list[JsonParseGrader | JsonSchemaGrader] = []
    seen: dict[str, int] = {}
    for validator in validators:
        kind = str(validator.kind)
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}_{seen[kind]}"
        if kind == "json_schema":
            graders.append(JsonSchemaGrader(name=name, json_schema=validator.json_schema))
        else:
            graders.append(JsonParseGrader(name=name))
    return graders


class Grade(BaseModel):
    """One grader's verdict on one prediction."""

    model_config = ConfigDict(extra="forbid")

    score: Annotated[float, Field(ge=0, le=1)]
    passed: bool
    error: Annotated[str | None, Field(max_length=500, description="Why it failed, where there is a reason.")] = None


class GraderSummary(BaseModel):
    """One grader over one round: how many predictions it graded, how many passed, the mean score."""

    model_config = ConfigDict(extra="forbid")

    graded: Annotated[int, Field(ge=0)]
    passed: Annotated[int, Field(ge=0)]
    mean_score: Annotated[float | None, Field(ge=0, le=1)] = None
