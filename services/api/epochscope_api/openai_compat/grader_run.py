"""An OpenAI grader tried on one answer (graders/run): translated, then each of its Epochscope graders run by
`service_layer.graders.run_grader`, the use case behind POST /v1/graders/run, so the scores are the ones a prediction
round or a GRPO reward gives the same text, under the same bounds and time limit."""

import time
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.grader_models import (
    EpochscopeVerdict,
    OpenAIGraderRunErrors,
    OpenAIGraderRunMetadata,
    OpenAIGraderRunRequest,
    OpenAIGraderRunResponse,
)
from epochscope_api.openai_compat.graders import translate_grader
from epochscope_api.service_layer.graders import run_grader
from epochscope_api.settings import ApiSettings
from epochscope_runtime.grading import Verdict
from epochscope_runtime.sampler import reference_text
from epochscope_schemas.graders import GraderConfig, StringCheckGrader


async def run_openai_grader(request: OpenAIGraderRunRequest, settings: ApiSettings) -> OpenAIGraderRunResponse:
    """The reward of `request.model_sample` under `request.grader`: each grader's score times its weight, summed."""
    started = time.perf_counter()
    translated = translate_grader(request.grader)
    references = item_references(request.item, translated.graders)
    verdicts: dict[str, EpochscopeVerdict] = {}
    for config, weight in translated.components:
        verdict = await _verdict(config, request.model_sample, references, settings)
        verdicts[config.name] = (
            EpochscopeVerdict(graded=False, weight=weight)
            if verdict is None
            else EpochscopeVerdict(
                graded=True, score=verdict.score, passed=verdict.passed, reason=verdict.reason, weight=weight
            )
        )
    scores = {name: verdict.score for name, verdict in verdicts.items() if verdict.score is not None}
    return OpenAIGraderRunResponse(
        reward=sum(verdicts[name].weight * score for name, score in scores.items()),
        metadata=OpenAIGraderRunMetadata(
            errors=OpenAIGraderRunErrors(invalid_variable_error=len(scores) < len(verdicts)),
            execution_time=time.perf_counter() - started,
            name=translated.name,
            scores=scores,
            type=translated.type,
        ),
        sub_rewards=scores,
        epochscope_verdicts=verdicts,
    )


def item_references(item: Any, graders: Sequence[GraderConfig]) -> dict[str, str]:
    """The item's fields the graders compare with, as text the way a training row's references are (a string as it
    is, any other JSON value as JSON); a field the item lacks is absent (that grader does not grade)."""
    fields = {
        config.reference_field
        for config in graders
        if not (isinstance(config, StringCheckGrader) and config.reference is not None)
    }
    if not fields or item is None:
        return {}
    if not isinstance(item, dict):
        raise OpenAIError(400, "item must be a JSON object (the dataset row)", param="item")
    return {field: reference_text(item[field]) for field in fields if field in item}


async def _verdict(
    config: GraderConfig, answer: str, references: dict[str, str], settings: ApiSettings
) -> Verdict | None:
    try:
        return await run_grader(config, "", answer, references, settings)
    except RequestValidationError as exc:  # a text past the server's limit: named as the OpenAI request names it
        error = exc.errors()[0]
        raise OpenAIError(400, error["msg"], param=_openai_param(error["loc"])) from None


def _openai_param(loc: Sequence[str | int]) -> str:
    """The OpenAI request field behind a field of POST /v1/graders/run's body (`("body", "answer")`, ...)."""
    field = [str(part) for part in loc[1:]]
    if field[:1] == ["answer"]:
        return "model_sample"
    if field[:1] == ["references"]:
        return ".".join(["item", *field[1:]])
    return "grader"
