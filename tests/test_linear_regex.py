"""Users' regular expressions run in linear time: JSON Schema patterns in validators, LoRA target modules."""

import time
import uuid

import pytest
from pydantic import ValidationError

from epochscope_runtime.grading import Judge
from epochscope_schemas.config import JobConfig, PredictionsConfig
from epochscope_schemas.config import ValidatorConfig as Validator
from epochscope_schemas.linear_regex import UnsafePattern, compile_linear, schema_problems

CATASTROPHIC = r"^(a+)+$"  # exponential for a backtracking engine on "aaaa...!"


def test_a_catastrophic_pattern_in_a_validator_runs_in_linear_time_on_a_hostile_answer() -> None:
    config = PredictionsConfig(
        validators=[Validator(kind="json_schema", json_schema={"type": "string", "pattern": CATASTROPHIC})]
    )
    judge = Judge(config.graders)  # the validator, as the grader it became
    answer = '"' + "a" * 100_000 + '!"'
    started = time.perf_counter()
    result = judge("", answer, {})
    elapsed = time.perf_counter() - started
    assert result.valid is False and "does not match" in (result.validation_error or "")
    assert elapsed < 2.0  # Python's re would need about 2**100000 steps; RE2 takes milliseconds
    assert judge("", '"aaaa"', {}).valid is True


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "string", "pattern": "(?=a)b"}, "invalid perl operator"),
        ({"properties": {"x": {"pattern": r"(a)\1"}}}, "/properties/x"),
        ({"patternProperties": {"^a": {}}}, "patternProperties is not supported"),
    ],
)
def test_patterns_that_need_backtracking_are_refused_when_the_job_is_submitted(schema: dict, problem: str) -> None:
    assert any(problem in found for found in schema_problems(schema))
    with pytest.raises(ValidationError, match="linear time|patternProperties"):
        Validator(kind="json_schema", json_schema=schema)


def test_compile_linear_names_the_pattern_and_caches() -> None:
    with pytest.raises(UnsafePattern, match=r"'\(\?<=a\)b'"):
        compile_linear("(?<=a)b")
    assert compile_linear("a+") is compile_linear("a+")


@pytest.mark.parametrize("target_modules", ["(a+)+b", ".*", ["q_proj", "(a+)+"], ["x"] * 65])
def test_lora_target_modules_are_names_not_a_regular_expression(target_modules: object) -> None:
    config = {"model": "m", "dataset_id": str(uuid.uuid4()), "lora": {"target_modules": target_modules}}
    with pytest.raises(ValidationError) as raised:
        JobConfig.model_validate(config)
    assert all(error["loc"][:2] == ("lora", "target_modules") for error in raised.value.errors())


def test_lora_target_modules_take_names_and_all_linear() -> None:
    for target_modules in (["q_proj", "v_proj", "model.layers.0.mlp.up_proj"], "all-linear"):
        config = {"model": "m", "dataset_id": str(uuid.uuid4()), "lora": {"target_modules": target_modules}}
        assert JobConfig.model_validate(config).lora.target_modules == target_modules
