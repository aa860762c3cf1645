"""The GRPO method's config (schemas/epochscope_schemas/methods.py): rewards are graders, inline or named; every
bound is a 422 naming the field, server limits included (GrpoLimits, applied by the API's check_job_config)."""

import uuid
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from epochscope_api.jobs.validation import check_job_config
from epochscope_api.settings import ApiSettings
from epochscope_runtime.grading import Grader
from epochscope_schemas.config import JobConfig
from epochscope_schemas.graders import GraderConfig
from epochscope_schemas.methods import GrpoMethod, SftMethod

SETTINGS = ApiSettings(
    job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": "/tmp"}
)
LABEL = {"type": "string_check", "name": "label", "operation": "equals", "reference_field": "label"}


def job(method: dict[str, Any], **fields: Any) -> JobConfig:
    predictions = {"graders": [{"type": "json_parse", "name": "is_json"}]}
    fields = {"batch_size": 8, **fields}
    return JobConfig(model="m", dataset_id=uuid.uuid4(), method=method, predictions=predictions, **fields)


def errors_of(method: dict[str, Any], **fields: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as raised:
        job(method, **fields)
    return [(error["loc"], error["msg"]) for error in raised.value.errors()]


def test_sft_stays_the_default_and_a_grpo_job_names_its_reward_components() -> None:
    assert isinstance(JobConfig(model="m", dataset_id=uuid.uuid4()).method, SftMethod)
    config = job({"type": "grpo", "rewards": [{"grader": "is_json", "weight": 1}, {"grader": LABEL, "weight": 3}]})
    assert isinstance(config.method, GrpoMethod)
    assert [(c.name, c.weight) for c in config.method.rewards] == [("is_json", 1.0), ("label", 3.0)]
    assert (config.method.num_generations, config.method.rollouts.log) == (4, "sample")
    assert JobConfig.model_validate_json(config.model_dump_json()) == config  # a stored config parses again


def test_a_reward_naming_no_grader_of_the_job_is_refused_naming_the_field() -> None:
    ((loc, msg),) = errors_of({"type": "grpo", "rewards": [{"grader": LABEL}, {"grader": "accuracy"}]})
    assert "method.rewards.1.grader" in msg and "'accuracy'" in msg


def test_weights_summing_to_zero_and_a_grader_twice_are_refused() -> None:
    ((loc, msg),) = errors_of({"type": "grpo", "rewards": [{"grader": "is_json", "weight": 0}]})
    assert loc[:2] == ("method", "grpo") and "weights must not sum to zero" in msg
    ((loc, msg),) = errors_of({"type": "grpo", "rewards": [{"grader": "is_json"}, {"grader": "is_json"}]})
    assert "each grader at most once: is_json" in msg


def test_a_field_of_another_method_is_refused_where_it_was_written() -> None:
    errors = errors_of({"type": "grpo", "rewards": [{"grader": "is_json"}], "packing": True})
    assert errors == [(("method", "grpo", "packing"), "Extra inputs are not permitted")]
    errors = errors_of({"type": "sft", "num_generations": 4})
    assert errors == [(("method", "sft", "num_generations"), "Extra inputs are not permitted")]


def test_a_batch_holds_whole_groups_of_generations() -> None:
    ((_, msg),) = errors_of({"type": "grpo", "rewards": [{"grader": "is_json"}], "num_generations": 3})
    assert "batch_size (8) must be a multiple of method.num_generations (3)" in msg


@pytest.mark.parametrize(
    ("method", "setting", "loc"),
    [
        ({"num_generations": 32}, "max_num_generations", ("body", "method", "num_generations")),
        ({"max_completion_length": 300}, "max_completion_length", ("body", "method", "max_completion_length")),
        ({"rollouts": {"per_step": 9}}, "max_rollouts_per_step", ("body", "method", "rollouts", "per_step")),
    ],
)
def test_server_limits_are_a_422_naming_the_field(method: dict[str, Any], setting: str, loc: tuple) -> None:
    config = job({"type": "grpo", "rewards": [{"grader": "is_json"}], **method}, batch_size=32)
    value = config.method.model_dump()[loc[2]] if len(loc) == 3 else config.method.rollouts.per_step

    def problems(limit: int) -> list[tuple]:
        limits = SETTINGS.grpo_limits.model_copy(update={setting: limit})
        with pytest.raises(RequestValidationError) as raised:  # the model "m" is never in the catalog
            check_job_config(config, SETTINGS.model_copy(update={"grpo_limits": limits}))
        return [(e["loc"], e["msg"]) for e in raised.value.errors() if e["loc"] != ("body", "model")]

    assert problems(value) == []
    assert problems(value - 1) == [(loc, f"must be at most {value - 1} (server limit)")]


def test_a_grader_compares_with_its_reference_field_the_ground_truth_by_default() -> None:
    graders = TypeAdapter(GraderConfig)
    label = Grader(graders.validate_python(LABEL))
    truth = Grader(graders.validate_python({**LABEL, "reference_field": "ground_truth"}))
    default = Grader(graders.validate_python({key: v for key, v in LABEL.items() if key != "reference_field"}))
    references = {"ground_truth": "negative", "label": "positive"}
    assert label("p", "positive", references).score == 1.0
    assert truth("p", "positive", references).score == 0.0 and default("p", "positive", references).score == 0.0
    assert label("p", "positive", {"ground_truth": "positive"}) is None  # no label: not graded
