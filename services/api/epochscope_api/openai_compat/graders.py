"""OpenAI's grader JSON translated onto Epochscope graders (`epochscope_schemas.graders`), which the runtime's one
grading implementation runs: the same verdict in `graders/run`, a prediction round and a reinforcement reward.

- `string_check`: `eq`, `ne`, `like` (contains), `ilike` (contains, case-insensitive) onto the string_check grader's
  equals, not_equals and contains; both texts are compared stripped of surrounding whitespace.
- `text_similarity`: `fuzzy_match`, `bleu`, `rouge_1`, `rouge_2`, `rouge_l` onto the same metrics; `pass_threshold`
  (optional) is the grader's threshold. `cosine` (an embedding model), `gleu`, `meteor`, `rouge_3`..`rouge_5` are
  refused: Epochscope does not compute them.
- `multi`: its `graders` (by name) when `calculate_output` is a weighted sum of them (`grader_formula`): each
  becomes a grader, weighted.
- Templates: `input` is the answer, `{{sample.output_text}}`; `reference` is `{{item.<field>}}` (a top-level field
  of the row, the grader's `reference_field`) or, for string_check, a literal text.
- `python`, `score_model`, `label_model` and any other type: refused, naming the type and the param.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.grader_formula import NotAWeightedSum, weighted_sum
from epochscope_schemas.graders import (
    GRADER_NAME_PATTERN,
    GROUND_TRUTH,
    GraderConfig,
    SimilarityMetric,
    StringCheckGrader,
    StringOperation,
    TextSimilarityGrader,
)
from epochscope_schemas.methods import MAX_REWARDS

REFUSED_TYPES = {
    "python": "Epochscope does not run user code as a grader",
    "score_model": "Epochscope has no model grader",
    "label_model": "Epochscope has no model grader",
}
# Where OpenAI's operation maps: (Epochscope operation, case-sensitive).
OPERATIONS = {
    "eq": (StringOperation.EQUALS, True),
    "ne": (StringOperation.NOT_EQUALS, True),
    "like": (StringOperation.CONTAINS, True),
    "ilike": (StringOperation.CONTAINS, False),
}
METRICS = {
    "fuzzy_match": SimilarityMetric.FUZZY_MATCH,
    "bleu": SimilarityMetric.BLEU,
    "rouge_1": SimilarityMetric.ROUGE_1,
    "rouge_2": SimilarityMetric.ROUGE_2,
    "rouge_l": SimilarityMetric.ROUGE_L,
}
ANSWER_TEMPLATE = "{{sample.output_text}}"
_ANSWER = re.compile(r"\{\{\s*sample\.output_text\s*\}\}")
_ITEM = re.compile(r"\{\{\s*item\.([^{}\s]+)\s*\}\}")
_FIELD = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a top-level row field a grader can name (GraderConfig.reference_field)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_Model = TypeVar("_Model", bound=BaseModel)
TEXT_MAX = 10_000  # characters of a template or literal reference (a string_check's reference is bounded alike)


@dataclass(frozen=True)
class TranslatedGrader:
    """An OpenAI grader as Epochscope runs it: Epochscope graders, each with its weight in the reward (one grader
    weighs 1; a multi grader's weights come from its formula)."""

    name: str  # the OpenAI grader's name, as given
    type: str  # its OpenAI type
    components: tuple[tuple[GraderConfig, float], ...]

    @property
    def graders(self) -> list[GraderConfig]:
        return [config for config, _ in self.components]


class _Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    input: str = Field(max_length=TEXT_MAX)
    reference: str = Field(max_length=TEXT_MAX)


class _StringCheck(_Template):
    type: Literal["string_check"]
    operation: Literal["eq", "ne", "like", "ilike"]


class _TextSimilarity(_Template):
    type: Literal["text_similarity"]
    evaluation_metric: Literal[
        "cosine",
        "fuzzy_match",
        "bleu",
        "gleu",
        "meteor",
        "rouge_1",
        "rouge_2",
        "rouge_3",
        "rouge_4",
        "rouge_5",
        "rouge_l",
    ]
    pass_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class _Multi(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["multi"]
    name: str = Field(min_length=1, max_length=256)
    graders: dict[str, Any]
    calculate_output: str


def translate_grader(grader: Any, param: str = "grader") -> TranslatedGrader:
    """The Epochscope graders that run `grader` (OpenAI's JSON), or an OpenAIError (400) naming the param at fault
    (`param` is where the grader sits in the request)."""
    kind = _type_of(grader, param)
    if kind == "multi":
        return _multi(grader, param)
    config = _single(grader, param, epochscope_name(str(grader.get("name") or kind)))
    return TranslatedGrader(name=str(grader["name"]), type=kind, components=((config, 1.0),))


def epochscope_name(name: str) -> str:
    """An OpenAI grader's name as an Epochscope grader name: runs of other characters become `_`, 64 at most."""
    return _UNSAFE_NAME_CHARS.sub("_", name).strip("_")[:64] or "grader"


def _type_of(grader: Any, param: str) -> str:
    if not isinstance(grader, dict):
        raise OpenAIError(400, "a grader is a JSON object with a `type`", param=param)
    kind = grader.get("type")
    if kind in REFUSED_TYPES:
        raise OpenAIError(400, f"grader type {kind!r} is not supported: {REFUSED_TYPES[kind]}", param=f"{param}.type")
    if kind not in ("string_check", "text_similarity", "multi"):
        raise OpenAIError(
            400,
            f"unknown grader type {kind!r}: Epochscope runs string_check, text_similarity and multi",
            param=f"{param}.type",
        )
    return kind


def _single(grader: dict[str, Any], param: str, name: str) -> GraderConfig:
    if grader["type"] == "string_check":
        check = _parsed(_StringCheck, grader, param)
        _answer(check.input, f"{param}.input")
        literal, field = _reference(check.reference, f"{param}.reference", literal_allowed=True)
        operation, case_sensitive = OPERATIONS[check.operation]
        return StringCheckGrader(
            name=name, operation=operation, reference=literal, reference_field=field, case_sensitive=case_sensitive
        )
    similarity = _parsed(_TextSimilarity, grader, param)
    _answer(similarity.input, f"{param}.input")
    _, field = _reference(similarity.reference, f"{param}.reference", literal_allowed=False)
    metric = METRICS.get(similarity.evaluation_metric)
    if metric is None:
        raise OpenAIError(
            400,
            f"evaluation_metric {similarity.evaluation_metric!r} is not supported: Epochscope computes "
            f"{', '.join(METRICS)}",
            param=f"{param}.evaluation_metric",
        )
    threshold = {} if similarity.pass_threshold is None else {"threshold": similarity.pass_threshold}
    return TextSimilarityGrader(name=name, metric=metric, reference_field=field, **threshold)


def _multi(grader: dict[str, Any], param: str) -> TranslatedGrader:
    multi = _parsed(_Multi, grader, param)
    members = multi.graders
    if isinstance(members.get("type"), str):  # the SDK's type: one grader object rather than graders by name
        members = {epochscope_name(str(members.get("name") or members["type"])): members}
    if not 1 <= len(members) <= MAX_REWARDS:
        raise OpenAIError(400, f"a multi grader combines 1 to {MAX_REWARDS} graders", param=f"{param}.graders")
    configs: dict[str, GraderConfig] = {}
    for key, member in members.items():
        member_param = f"{param}.graders.{key}"
        if not re.fullmatch(GRADER_NAME_PATTERN, key):
            raise OpenAIError(400, "a grader's key must be 1 to 64 of A-Z a-z 0-9 _ . -", param=member_param)
        if _type_of(member, member_param) == "multi":
            raise OpenAIError(400, "a multi grader cannot hold another", param=f"{member_param}.type")
        configs[key] = _single(member, member_param, key)
    try:
        weights = weighted_sum(multi.calculate_output, list(configs))
    except NotAWeightedSum as exc:
        raise OpenAIError(
            400,
            f"calculate_output must be a weighted sum of the graders (like `0.5 * a + 0.5 * b`): {exc}",
            param=f"{param}.calculate_output",
        ) from None
    return TranslatedGrader(
        name=multi.name, type="multi", components=tuple((configs[key], weights[key]) for key in configs)
    )


def _parsed(model: type[_Model], grader: dict[str, Any], param: str) -> _Model:
    try:
        return model.model_validate(grader)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise OpenAIError(400, f"{where}: {error['msg']}", param=f"{param}.{where}") from None


def _answer(template: str, param: str) -> None:
    if not _ANSWER.fullmatch(template.strip()):
        raise OpenAIError(400, f"Epochscope grades the model's answer: input must be {ANSWER_TEMPLATE}", param=param)


def _reference(template: str, param: str, *, literal_allowed: bool) -> tuple[str | None, str]:
    """(the literal reference, or None; the row field it reads) for a reference template."""
    match = _ITEM.fullmatch(template.strip())
    if match is not None:
        field = match.group(1)
        if not _FIELD.fullmatch(field):
            raise OpenAIError(
                400,
                "a reference names a top-level field of the row: {{item.<field>}}, 1 to 64 of A-Z a-z 0-9 _ -",
                param=param,
            )
        return None, field
    if "{{" in template or not literal_allowed:
        raise OpenAIError(
            400,
            "reference must be one {{item.<field>}} template" + (" or a literal text" if literal_allowed else ""),
            param=param,
        )
    return template, GROUND_TRUTH
