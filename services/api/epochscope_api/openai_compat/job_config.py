"""An OpenAI job request mapped onto an Epochscope job config, and Epochscope's field paths mapped back onto the
request's `param` names, so every refusal names the field the user wrote."""

import uuid
from typing import Any

from pydantic import ValidationError

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.reinforcement import reinforcement_job_parts
from epochscope_api.openai_compat.requests import Hyperparameters, JobCreateRequest, ReinforcementHyperparameters
from epochscope_schemas.config import JobConfig

BASE_LEARNING_RATE: float = JobConfig.model_fields["learning_rate"].default
# Prediction rounds on a seeded sample of the validation file (or of the training file), and the final weights
# kept (checkpoints mode `best`), so that `fine_tuned_model` names them.
DEFAULT_PREDICTIONS: dict[str, Any] = {"enabled": True, "checkpoints": {"mode": "best"}}
OPENAI_METHOD = {"sft": "supervised", "dpo": "dpo", "grpo": "reinforcement"}
_HYPERPARAMETER = {"num_epochs": "n_epochs", "batch_size": "batch_size", "learning_rate": "learning_rate_multiplier"}
_TOP_LEVEL = {"model": "model", "dataset_id": "training_file", "eval_dataset_id": "validation_file", "name": "suffix"}


def openai_param(loc: tuple[str | int, ...], method_type: str) -> str | None:
    """The request field behind an Epochscope config path (`("num_epochs",)` -> `method.supervised.hyperparameters
    .n_epochs`); None for a rule across fields."""
    if not loc:
        return None
    head = str(loc[0]) if loc else ""
    if head in _HYPERPARAMETER:
        return f"method.{method_type}.hyperparameters.{_HYPERPARAMETER[head]}"
    if head in _TOP_LEVEL:
        return _TOP_LEVEL[head]
    if loc[:2] == ("method", "beta") and method_type == "dpo":
        return "method.dpo.hyperparameters.beta"
    if head == "method":
        return f"method.{method_type}"
    if head == "metadata":
        return "metadata"
    return ".".join(str(part) for part in loc)


def _hyperparameters(request: JobCreateRequest, method_type: str) -> Hyperparameters:
    method = request.method
    settings = getattr(method, method_type, None) if method else None
    if method_type == "reinforcement":
        given = ReinforcementHyperparameters(**(settings or {}).get("hyperparameters", {}))
    else:
        given = getattr(settings, "hyperparameters", None)
    if given is not None and request.hyperparameters is not None:
        raise OpenAIError(400, "give hyperparameters in method, not both places", param="hyperparameters")
    return given or request.hyperparameters or Hyperparameters()


def _training_fields(hyper: Hyperparameters) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if hyper.n_epochs != "auto":
        fields["num_epochs"] = hyper.n_epochs
    if hyper.batch_size != "auto":
        fields["batch_size"] = hyper.batch_size
    if hyper.learning_rate_multiplier != "auto":
        fields["learning_rate"] = BASE_LEARNING_RATE * hyper.learning_rate_multiplier
    return fields


def _method_fields(request: JobCreateRequest, method_type: str, hyper: Hyperparameters) -> dict[str, Any]:
    """`method`, and the graders a reinforcement method's rewards name."""
    if method_type == "dpo":
        beta = getattr(hyper, "beta", "auto")
        return {"method": {"type": "dpo"} | ({} if beta == "auto" else {"beta": beta})}
    if method_type == "reinforcement":
        if request.method is None or request.method.reinforcement is None:
            raise OpenAIError(400, "the reinforcement method needs method.reinforcement", param="method.reinforcement")
        grpo, graders = reinforcement_job_parts(request.method.reinforcement)
        return {"method": grpo.model_dump(mode="json"), "graders": [g.model_dump(mode="json") for g in graders]}
    return {}


def job_config(
    request: JobCreateRequest, training: uuid.UUID, validation: uuid.UUID | None, method_type: str
) -> JobConfig:
    """The Epochscope job the request asks for; a 400 naming the request's field where it cannot be one."""
    if request.integrations:
        raise OpenAIError(
            400, "integrations are not supported: Epochscope shows the metrics itself", param="integrations"
        )
    hyper = _hyperparameters(request, method_type)
    method = _method_fields(request, method_type, hyper)
    predictions = dict(DEFAULT_PREDICTIONS)
    if validation is not None:
        predictions["samples_dataset_id"] = str(validation)
    if request.seed is not None:
        predictions["seed"] = request.seed
    predictions |= request.predictions or {}
    if "graders" in method:
        predictions["graders"] = [*predictions.get("graders", []), *method.pop("graders")]
    fields = {
        "model": request.model,
        "dataset_id": str(training),
        "eval_dataset_id": str(validation) if validation else None,
        "name": request.suffix,
        "metadata": request.metadata or {},
        "predictions": predictions,
        **_training_fields(hyper),
        **method,
    }
    try:
        return JobConfig.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        raise OpenAIError(400, first["msg"], param=openai_param(first["loc"], method_type)) from None
