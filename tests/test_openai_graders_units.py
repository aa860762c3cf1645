"""OpenAI grader JSON onto Epochscope graders, and method.reinforcement onto GRPO: every operation, metric, template
and formula accepted, and every refusal with the param it names. Pure logic: no stack."""

from typing import Any

import pytest

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.grader_formula import NotAWeightedSum, weighted_sum
from epochscope_api.openai_compat.grader_run import _openai_param, item_references
from epochscope_api.openai_compat.graders import translate_grader
from epochscope_api.openai_compat.reinforcement import reinforcement_job_parts
from epochscope_runtime.grading import Grader
from epochscope_schemas.graders import StringCheckGrader, TextSimilarityGrader

ANSWER = "{{sample.output_text}}"


def string_check(operation: str = "eq", reference: str = "{{item.answer}}") -> dict[str, Any]:
    return {"type": "string_check", "name": "check", "input": ANSWER, "reference": reference, "operation": operation}


def similarity(metric: str = "fuzzy_match", reference: str = "{{item.answer}}", **extra: Any) -> dict[str, Any]:
    return {
        "type": "text_similarity",
        "name": "similar",
        "input": ANSWER,
        "reference": reference,
        "evaluation_metric": metric,
    } | extra


def multi(formula: str, **graders: dict[str, Any]) -> dict[str, Any]:
    graders = graders or {"a": string_check(), "b": similarity()}
    return {"type": "multi", "name": "combined", "graders": graders, "calculate_output": formula}


def refusal(grader: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        translate_grader(grader)
    assert caught.value.status_code == 400 and caught.value.type == "invalid_request_error"
    assert caught.value.body()["error"]["param"] == caught.value.param
    return caught.value


@pytest.mark.parametrize(
    ("operation", "answer", "row", "score"),
    [
        ("eq", " Paris ", "Paris", 1.0),
        ("eq", "paris", "Paris", 0.0),
        ("ne", "Lyon", "Paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "It is Paris.", "Paris", 1.0),
        ("like", "It is paris.", "Paris", 0.0),
        ("ilike", "IT IS PARIS.", "Paris", 1.0),
        ("ilike", "It is Lyon.", "Paris", 0.0),
    ],
)
def test_string_check_operations_grade_as_openai_describes_them(
    operation: str, answer: str, row: str, score: float
) -> None:
    (config,) = translate_grader(string_check(operation)).graders
    assert isinstance(config, StringCheckGrader) and config.reference_field == "answer"
    assert Grader(config)("", answer, {"answer": row}).score == score


def test_templates_map_onto_the_answer_the_row_field_or_a_literal_reference() -> None:
    spaced = translate_grader(string_check(reference="{{ item.label }}") | {"input": "{{ sample.output_text }}"})
    assert (spaced.graders[0].reference_field, spaced.graders[0].reference) == ("label", None)
    literal = translate_grader(string_check(reference="Paris")).graders[0]
    assert (literal.reference, literal.reference_field) == ("Paris", "ground_truth")
    assert Grader(literal)("", "Paris", {}).passed


@pytest.mark.parametrize(
    ("grader", "param", "says"),
    [
        (string_check() | {"input": "{{item.answer}}"}, "grader.input", "{{sample.output_text}}"),
        (string_check() | {"input": "Answer: {{sample.output_text}}"}, "grader.input", "{{sample.output_text}}"),
        (string_check(reference="{{item.answer.city}}"), "grader.reference", "top-level field"),
        (string_check(reference="The answer is {{item.answer}}"), "grader.reference", "or a literal text"),
        (string_check(reference="{{sample.output_text}}"), "grader.reference", "{{item.<field>}}"),
        (similarity(reference="Paris"), "grader.reference", "one {{item.<field>}} template"),
        (string_check(operation="regex"), "grader.operation", "'eq', 'ne', 'like' or 'ilike'"),
        (string_check() | {"case_sensitive": False}, "grader.case_sensitive", "Extra inputs"),
        ({k: v for k, v in string_check().items() if k != "name"}, "grader.name", "Field required"),
        (string_check(reference="x" * 10_001), "grader.reference", "at most 10000"),
    ],
)
def test_templates_and_fields_epochscope_cannot_read_are_refused_naming_the_param(
    grader: dict[str, Any], param: str, says: str
) -> None:
    error = refusal(grader)
    assert error.param == param and says in error.message


@pytest.mark.parametrize(
    ("metric", "epochscope"),
    [("fuzzy_match", "fuzzy_match"), ("bleu", "bleu"), ("rouge_1", "rouge_1")]
    + [("rouge_2", "rouge_2"), ("rouge_l", "rouge_l")],
)
def test_text_similarity_metrics_map_onto_the_same_metric(metric: str, epochscope: str) -> None:
    (config,) = translate_grader(similarity(metric)).graders
    assert isinstance(config, TextSimilarityGrader) and config.metric == epochscope and config.threshold == 0.5
    assert Grader(config)("", "the cat sat", {"answer": "the cat sat"}).score == pytest.approx(1.0)


def test_pass_threshold_is_the_graders_threshold_and_is_bounded() -> None:
    (config,) = translate_grader(similarity(pass_threshold=0.9)).graders
    assert config.threshold == 0.9
    assert not Grader(config)("", "kitten", {"answer": "sitting"}).passed  # 8/13: passes at the default 0.5 only
    (default,) = translate_grader(similarity()).graders
    assert Grader(default)("", "kitten", {"answer": "sitting"}).passed
    assert refusal(similarity(pass_threshold=1.5)).param == "grader.pass_threshold"


@pytest.mark.parametrize("metric", ["cosine", "gleu", "meteor", "rouge_3", "rouge_4", "rouge_5"])
def test_metrics_epochscope_does_not_compute_are_refused_naming_the_param(metric: str) -> None:
    error = refusal(similarity(metric))
    assert error.param == "grader.evaluation_metric" and f"{metric!r} is not supported" in error.message


def test_a_metric_openai_does_not_have_is_refused_naming_the_param() -> None:
    error = refusal(similarity("wer"))
    assert error.param == "grader.evaluation_metric" and "Input should be 'cosine'" in error.message


@pytest.mark.parametrize("kind", ["python", "score_model", "label_model", "endpoint", None])
def test_grader_types_epochscope_does_not_run_are_refused_naming_the_type_and_param(kind: str | None) -> None:
    error = refusal({"type": kind, "name": "g", "source": "def grade(sample, item): return 1"})
    assert error.param == "grader.type" and repr(kind) in error.message


def test_a_grader_that_is_not_an_object_is_refused() -> None:
    assert refusal("string_check").param == "grader"


@pytest.mark.parametrize(
    ("formula", "weights"),
    [
        ("0.7 * a + 0.3 * b", {"a": 0.7, "b": 0.3}),
        ("(a + b) / 2", {"a": 0.5, "b": 0.5}),
        ("a * 2 + b / 4", {"a": 2.0, "b": 0.25}),
        ("a", {"a": 1.0, "b": 0.0}),
        ("+a + b - 0.5 * b", {"a": 1.0, "b": 0.5}),
        ("  a+a+b ", {"a": 2.0, "b": 1.0}),
    ],
)
def test_a_weighted_sum_formula_gives_each_grader_its_weight(formula: str, weights: dict[str, float]) -> None:
    translated = translate_grader(multi(formula))
    assert (translated.name, translated.type) == ("combined", "multi")
    assert {config.name: weight for config, weight in translated.components} == pytest.approx(weights)
    assert [config.reference_field for config in translated.graders] == ["answer", "answer"]


@pytest.mark.parametrize(
    ("formula", "says"),
    [
        ("min(a, b)", "Call is not part"),
        ("max(a, b) / 2", "Call is not part"),
        ("a * b", "a product of graders"),
        ("a ** 2", "Pow is not part"),
        ("a - b", "the weight of 'b' must be between 0"),
        ("a + 1", "no constant term"),
        ("a + c", "'c' is not one of the graders"),
        ("__import__('os').system('true')", "Call is not part"),
        ("a.__class__", "Attribute is not part"),
        ("a / b", "dividing by a grader"),
        ("a / 0", "division by zero"),
        ("1e999 * a", "finite"),
        ("9" * 400 + " * a", "finite"),
        ("0 * a", "must not sum to zero"),
        ("2000 * a", "between 0 and 1000"),
        ("a +", "not a formula"),
        ("(" * 300 + "a" + ")" * 300, "must be at most 500 characters"),
        ("(" * 240 + "a" + ")" * 240, "not a formula"),
        ("a if b else b", "IfExp is not part"),
        ("True * a", "Constant is not part"),
    ],
)
def test_a_formula_that_is_not_a_weighted_sum_is_refused_naming_calculate_output(formula: str, says: str) -> None:
    error = refusal(multi(formula))
    assert error.param == "grader.calculate_output" and says in error.message


def test_the_formula_is_parsed_never_evaluated() -> None:
    with pytest.raises(NotAWeightedSum):
        weighted_sum("__import__('sys').exit(1)", ["a"])
    assert weighted_sum("3 * a", ["a"]) == {"a": 3.0}


def test_multi_members_are_translated_with_their_own_params() -> None:
    assert refusal(multi("a + b", a=string_check(), b={"type": "python", "name": "p"})).param == (
        "grader.graders.b.type"
    )
    assert refusal(multi("a", a=multi("x"))).param == "grader.graders.a.type"
    assert refusal(multi("a", a=similarity("cosine"))).param == "grader.graders.a.evaluation_metric"
    assert refusal(multi("a", **{"a b": string_check()})).param == "grader.graders.a b"
    assert refusal(multi("a", **{f"g{i}": string_check() for i in range(9)})).param == "grader.graders"
    assert refusal(multi("a") | {"graders": {}}).param == "grader.graders"
    assert refusal(multi("a") | {"extra": 1}).param == "grader.extra"


def test_multi_with_one_grader_object_as_the_sdk_types_it_names_it_after_the_grader() -> None:
    translated = translate_grader(multi("Exact_match") | {"graders": string_check() | {"name": "Exact match"}})
    assert [(config.name, weight) for config, weight in translated.components] == [("Exact_match", 1.0)]


def test_a_single_graders_name_becomes_a_valid_epochscope_name() -> None:
    assert translate_grader(string_check() | {"name": "Réponse exacte (v2)"}).graders[0].name == "R_ponse_exacte_v2"
    assert translate_grader(string_check() | {"name": "!!!"}).graders[0].name == "grader"


def test_item_references_are_the_fields_the_graders_read_as_a_training_rows_are() -> None:
    graders = translate_grader(multi("a + b + c", c=string_check(reference="lit"), a=string_check(), b=similarity()))
    item = {"answer": {"city": "Zürich"}, "other": "x"}
    assert item_references(item, graders.graders) == {"answer": '{"city": "Zürich"}'}
    assert item_references({"other": "x"}, graders.graders) == {}
    assert item_references(None, graders.graders) == {}
    with pytest.raises(OpenAIError) as caught:
        item_references(["not", "a", "row"], graders.graders)
    assert caught.value.param == "item"
    assert item_references(["ignored"], translate_grader(string_check(reference="lit")).graders) == {}


def test_a_text_past_the_grader_run_limit_is_named_as_the_openai_request_names_it() -> None:
    assert _openai_param(("body", "answer")) == "model_sample"
    assert _openai_param(("body", "references", "answer")) == "item.answer"
    assert _openai_param(("body", "grader", "json_schema")) == "grader"


REINFORCEMENT = {"grader": string_check(), "hyperparameters": {"n_epochs": 2, "batch_size": 4}}


def test_reinforcement_maps_the_grader_onto_rewards_and_the_rounds_graders() -> None:
    method, graders = reinforcement_job_parts(
        {"grader": multi("0.25 * a + 0.75 * b"), "hyperparameters": {"learning_rate_multiplier": 2.0}}
    )
    assert method.type == "grpo" and method.num_generations == 4
    assert [(component.grader, component.weight) for component in method.rewards] == [
        (graders[0], 0.25),
        (graders[1], 0.75),
    ]
    assert [grader.name for grader in graders] == ["a", "b"]


@pytest.mark.parametrize(("multiplier", "generations"), [("auto", 4), (None, 4), (2, 8), (1.6, 6), (0.1, 2)])
def test_compute_multiplier_scales_the_completions_per_prompt(multiplier: Any, generations: int) -> None:
    hyperparameters = {"compute_multiplier": multiplier, "eval_interval": 5, "eval_samples": "auto"}
    method, _ = reinforcement_job_parts(
        REINFORCEMENT | {"hyperparameters": hyperparameters | {"reasoning_effort": "low"}}
    )
    assert method.num_generations == generations


@pytest.mark.parametrize(
    ("reinforcement", "param"),
    [
        ({"grader": {"type": "score_model", "name": "judge"}}, "method.reinforcement.grader.type"),
        ({"grader": multi("a * b")}, "method.reinforcement.grader.calculate_output"),
        ({"grader": string_check() | {"input": "{{item.x}}"}}, "method.reinforcement.grader.input"),
        ({}, "method.reinforcement.grader"),
        (REINFORCEMENT | {"beta": 0.1}, "method.reinforcement.beta"),
        ({"grader": string_check(), "hyperparameters": {"kl": 1}}, "method.reinforcement.hyperparameters.kl"),
        (
            {"grader": string_check(), "hyperparameters": {"compute_multiplier": 0}},
            "method.reinforcement.hyperparameters.compute_multiplier",
        ),
        (
            {"grader": string_check(), "hyperparameters": {"compute_multiplier": True}},
            "method.reinforcement.hyperparameters.compute_multiplier",
        ),
        (
            {"grader": string_check(), "hyperparameters": {"eval_interval": 0}},
            "method.reinforcement.hyperparameters.eval_interval",
        ),
        (
            {"grader": string_check(), "hyperparameters": {"eval_samples": "many"}},
            "method.reinforcement.hyperparameters.eval_samples",
        ),
        (
            {"grader": string_check(), "hyperparameters": {"reasoning_effort": "max"}},
            "method.reinforcement.hyperparameters.reasoning_effort",
        ),
        ({"grader": string_check(), "hyperparameters": []}, "method.reinforcement.hyperparameters"),
    ],
)
def test_reinforcement_refusals_name_their_param(reinforcement: dict[str, Any], param: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        reinforcement_job_parts(reinforcement)
    assert (caught.value.status_code, caught.value.param) == (400, param)


def test_a_reinforcement_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(OpenAIError) as caught:
        reinforcement_job_parts("string_check")  # type: ignore[arg-type]
    assert caught.value.param == "method.reinforcement"
