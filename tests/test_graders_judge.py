"""One judge: validators become graders once, at submission; `valid` is derived from the format graders; the
built-in scores and the text_similarity graders are the same numbers. Pure Python: no model, no stack."""

import pytest
from pydantic import ValidationError

from epochscope_runtime.grading import GROUND_TRUTH, Grader, Judge, Verdict
from epochscope_schemas.config import JobConfig, PredictionLimits, PredictionsConfig, limit_violations
from epochscope_schemas.graders import StringCheckGrader, TextSimilarityGrader

DATASET = "00000000-0000-0000-0000-000000000001"


def test_a_grader_is_callable_on_its_own_with_the_ground_truth_as_default_reference() -> None:
    grader = Grader(StringCheckGrader(name="label", operation="equals", case_sensitive=False))
    assert grader("Is it good?", " Positive ", {GROUND_TRUTH: "positive"}) == Verdict(1.0, True, None)
    assert grader("Is it good?", "negative", {GROUND_TRUTH: "positive"}) == (0.0, False, "does not equals 'positive'")
    assert grader("Is it good?", "positive", {"label": "positive"}) is None  # no ground truth: not graded


def test_validators_become_graders_at_submission_and_a_stored_config_parses_to_the_same() -> None:
    schema = {"type": "object", "description": "x" * 100}
    submitted = JobConfig.model_validate(
        {
            "model": "m",
            "dataset_id": DATASET,
            "predictions": {
                "validators": [{"kind": "json_parse"}, {"kind": "json_schema", "json_schema": schema}],
                "graders": [{"type": "json_schema", "name": "shape", "json_schema": schema}],
            },
        }
    )
    names = [g.name for g in submitted.predictions.graders]
    assert submitted.predictions.validators == [] and names == ["json_parse", "json_schema", "shape"]
    stored = JobConfig.model_validate_json(submitted.model_dump_json())  # as the trainer reads it
    assert stored.model_dump() == submitted.model_dump()
    # A limit names the field the user wrote the grader in, validators included.
    limits = PredictionLimits(max_json_schema_bytes=50)
    assert [loc for loc, _ in limit_violations(submitted, limits)] == [
        ("predictions", "validators", 1, "json_schema"),
        ("predictions", "graders", 0, "json_schema"),
    ]
    with pytest.raises(ValidationError, match="at most 24 graders"):
        PredictionsConfig(
            validators=[{"kind": "json_parse"}] * 8,
            graders=[{"type": "regex", "name": f"r{i}", "pattern": "x"} for i in range(17)],
        )


def test_valid_is_passing_every_format_grader_and_names_the_first_failure() -> None:
    config = PredictionsConfig(
        validators=[{"kind": "json_schema", "json_schema": {"type": "object", "required": ["city"]}}],
        graders=[{"type": "string_check", "name": "same"}, {"type": "json_parse", "name": "parses"}],
    )
    judge = Judge(config.graders)
    right_shape = judge("p", '{"city": "Oslo"}', {GROUND_TRUTH: "something else"})
    assert right_shape.valid is True and right_shape.validation_error is None
    assert right_shape.grades["same"].passed is False  # a content grader does not make the answer invalid
    wrong_shape = judge("p", "{}", {GROUND_TRUTH: "{}"})
    assert wrong_shape.valid is False and "'city' is a required property" in wrong_shape.validation_error
    assert Judge([StringCheckGrader(name="same")])("p", "x", {GROUND_TRUTH: "x"}).valid is None


@pytest.mark.parametrize(
    ("answer", "truth"),
    [("café crème brûlée", "crème brûlée"), ("Zoë books two nights in Zürich", "Zürich, two nights"), ("a", "b")],
)
def test_the_builtin_scores_are_the_similarity_graders_numbers(answer: str, truth: str) -> None:
    metrics = ("exact_match", "f1", "rouge_l")
    judge = Judge([TextSimilarityGrader(name=m, metric=m) for m in metrics])
    judgement = judge("p", answer, {GROUND_TRUTH: truth})
    assert judgement.scores is not None
    assert {m: getattr(judgement.scores, m) for m in metrics} == {m: judgement.grades[m].score for m in metrics}
    assert Judge([])("p", answer, {}).scores is None


def test_non_ascii_words_count_in_the_builtin_rouge_l() -> None:
    judgement = Judge([])("p", "東京 bridge", {GROUND_TRUTH: "東京 tower"})
    assert judgement.scores is not None and judgement.scores.rouge_l == 0.5  # rouge-score's tokenizer gave 0.0
