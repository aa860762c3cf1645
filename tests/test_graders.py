"""Graders on hand-worked cases: malformed JSON, missing fields, unicode, empty predictions; the validators
mapping; a catastrophic regex in linear time; round summaries. Pure Python: no model, no stack."""

import time
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from epochscope_runtime.grading import GROUND_TRUTH, Grader, Judge, similarity, summarize_grades
from epochscope_schemas.config import JobConfig, PredictionsConfig
from epochscope_schemas.events import PredictionEvent, parse_event
from epochscope_schemas.graders import GraderConfig

GRADER = TypeAdapter(GraderConfig)
BOOKING = '{"booking": {"city": "Paris", "nights": 3, "guests": [{"name": "Zoë"}]}}'


def grade(config: dict[str, Any], prediction: str, truth: str | None = None) -> tuple[float, bool, str | None] | None:
    """(score, passed, error) of one grader, or None when it did not grade."""
    references = {} if truth is None else {GROUND_TRUTH: truth}
    verdict = Grader(GRADER.validate_python({"name": "g"} | config))("the prompt", prediction, references)
    return None if verdict is None else tuple(verdict)


def test_json_parse_reads_fences_and_fails_malformed_and_empty_answers() -> None:
    assert grade({"type": "json_parse"}, '```json\n{"a": 1}\n```') == (1.0, True, None)
    score, passed, error = grade({"type": "json_parse"}, '{"a": 1')
    assert (score, passed) == (0.0, False) and error.startswith("not valid JSON")
    assert grade({"type": "json_parse"}, "")[:2] == (0.0, False)


def test_json_schema_names_where_the_answer_fails() -> None:
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    assert grade({"type": "json_schema", "json_schema": schema}, '{"city": "Zürich"}') == (1.0, True, None)
    score, _, error = grade({"type": "json_schema", "json_schema": schema}, '{"city": 3}')
    assert score == 0.0 and "at city" in error
    assert "'city' is a required property" in grade({"type": "json_schema", "json_schema": schema}, "{}")[2]
    assert grade({"type": "json_schema", "json_schema": schema}, "not json")[2].startswith("not valid JSON")


@pytest.mark.parametrize(
    ("config", "prediction", "truth", "expected"),
    [
        ({"operation": "equals"}, "  Paris ", "Paris", 1.0),
        ({"operation": "equals"}, "paris", "Paris", 0.0),
        ({"operation": "equals", "case_sensitive": False}, "PARIS", "paris", 1.0),
        ({"operation": "equals", "case_sensitive": False}, "STRASSE", "straße", 1.0),  # casefold, not lower
        ({"operation": "contains", "reference": "Zoë"}, "Guest: Zoë", None, 1.0),
        ({"operation": "starts_with", "reference": "{"}, '{"a": 1}', None, 1.0),
        ({"operation": "ends_with", "reference": "}"}, '{"a": 1', None, 0.0),
        ({"operation": "contains"}, "", "Paris", 0.0),
        ({"operation": "not_equals"}, "Lyon", "Paris", 1.0),
        ({"operation": "not_equals"}, " Paris", "Paris", 0.0),
        ({"operation": "not_equals", "case_sensitive": False}, "PARIS", "paris", 0.0),
    ],
)
def test_string_check(config: dict[str, Any], prediction: str, truth: str | None, expected: float) -> None:
    assert grade({"type": "string_check"} | config, prediction, truth)[0] == expected


def test_string_check_against_the_ground_truth_skips_samples_without_one() -> None:
    assert grade({"type": "string_check"}, "anything", None) is None


def test_regex_search_full_match_and_case() -> None:
    assert grade({"type": "regex", "pattern": r"\d{3}"}, "room 101 please")[0] == 1.0
    assert grade({"type": "regex", "pattern": r"\d{3}", "full_match": True}, "room 101")[0] == 0.0
    assert grade({"type": "regex", "pattern": "zoë", "case_sensitive": False}, "ZOË")[0] == 1.0
    assert grade({"type": "regex", "pattern": "x"}, "")[:2] == (0.0, False)


def test_a_catastrophic_regex_runs_in_linear_time_and_backtracking_patterns_are_refused() -> None:
    hostile = "a" * 200_000 + "!"
    started = time.perf_counter()
    assert grade({"type": "regex", "pattern": r"^(a+)+$"}, hostile)[0] == 0.0
    assert time.perf_counter() - started < 2.0  # Python's re: about 2**200000 steps
    with pytest.raises(ValidationError, match="linear time"):
        GRADER.validate_python({"type": "regex", "name": "g", "pattern": r"(a)\1"})


@pytest.mark.parametrize(
    ("path", "prediction", "expected"),
    [
        ("booking.city", '{"booking": {"city": " Paris "}}', (1.0, True, None)),
        ("booking.nights", '{"booking": {"nights": 3.0}}', (1.0, True, None)),
        ("booking.guests.0.name", '```json\n{"booking": {"guests": [{"name": "Zoë"}]}}\n```', (1.0, True, None)),
        ("booking.city", '{"booking": {"city": "Lyon"}}', (0.0, False, 'booking.city is "Lyon", expected "Paris"')),
        ("booking.city", '{"booking": {}}', (0.0, False, "no value at booking.city")),
        ("booking.nights", '{"booking": {"nights": true}}', (0.0, False, "booking.nights is true, expected 3")),
    ],
)
def test_json_field(path: str, prediction: str, expected: tuple) -> None:
    assert grade({"type": "json_field", "path": path}, prediction, BOOKING) == expected


def test_json_field_fails_malformed_answers_and_skips_a_truth_without_the_field() -> None:
    assert grade({"type": "json_field", "path": "booking.city"}, '{"booking": ', BOOKING)[2].startswith("not valid")
    assert grade({"type": "json_field", "path": "booking.city"}, "", BOOKING)[:2] == (0.0, False)
    assert grade({"type": "json_field", "path": "label"}, '{"label": "x"}', BOOKING) is None
    assert grade({"type": "json_field", "path": "label"}, '{"label": "x"}', "not json") is None
    assert (
        grade({"type": "json_field", "path": "label", "case_sensitive": False}, '{"label": "POS"}', '{"label": "pos"}')[
            0
        ]
        == 1.0
    )


@pytest.mark.parametrize(
    ("metric", "prediction", "truth", "expected"),
    [
        ("exact_match", "The Cat.", "cat", 1.0),
        ("f1", "the cat sat", "cat sat down", 0.8),  # 2 common: precision 1, recall 2/3
        ("rouge_1", "cat sat", "cat sat down", 0.8),
        ("rouge_2", "cat sat", "cat sat down", 2 / 3),  # bigrams: 1 of 1, 1 of 2
        ("rouge_l", "café crème", "café crème", 1.0),  # unicode words count (rouge-score's tokenizer drops them)
        ("bleu", "the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("chrf", "Zürich", "Zürich", 1.0),
        ("bleu", "", "the cat", 0.0),
        ("chrf", "", "", 1.0),
        ("fuzzy_match", "this is a test", "this is a test!", 28 / 29),  # rapidfuzz's fuzz.ratio docs: 96.55
        ("fuzzy_match", "kitten", "sitting", 2 * 4 / 13),  # "ittn" in common
        ("fuzzy_match", "Zürich", "Zurich", 2 * 5 / 12),  # characters, not bytes
        ("fuzzy_match", "abc", "", 0.0),
        ("fuzzy_match", "", "", 1.0),
    ],
)
def test_text_similarity_metrics(metric: str, prediction: str, truth: str, expected: float) -> None:
    assert similarity(metric, prediction, truth) == pytest.approx(expected, abs=1e-6)


def test_fuzzy_match_counts_the_longest_common_subsequence_on_long_texts_in_milliseconds() -> None:
    answer, reference = "ab" * 5000, "ba" * 5000  # 10,000 characters each: a quadratic table would take seconds
    started = time.perf_counter()
    assert similarity("fuzzy_match", answer, reference) == pytest.approx(2 * 9999 / 20000)
    assert time.perf_counter() - started < 1.0


def test_string_check_not_equals_says_what_it_equals() -> None:
    assert grade({"type": "string_check", "operation": "not_equals"}, "Paris", "Paris") == (
        0.0,
        False,
        "equals 'Paris'",
    )


def test_text_similarity_threshold_and_partial_bleu_chrf() -> None:
    config = {"type": "text_similarity", "metric": "chrf", "threshold": 0.5}
    score, passed, _ = grade(config, "the cat sat on a mat", "the cat sat on the mat")
    assert 0.5 < score < 1.0 and passed
    bleu = similarity("bleu", "the cat sat on a mat", "the cat sat on the mat")
    assert 0.0 < bleu < 1.0
    assert grade(config, "anything", None) is None


def test_old_validators_map_onto_named_graders_and_names_must_be_unique() -> None:
    config = PredictionsConfig(
        validators=[{"kind": "json_parse"}, {"kind": "json_schema", "json_schema": {"type": "object"}}],
        graders=[{"type": "json_field", "name": "city", "path": "booking.city"}],
    )
    assert config.validators == [] and [(g.type, g.name) for g in config.graders] == [
        ("json_parse", "json_parse"),
        ("json_schema", "json_schema"),
        ("json_field", "city"),
    ]
    two = PredictionsConfig(validators=[{"kind": "json_parse"}] * 2).graders
    assert [g.name for g in two] == ["json_parse", "json_parse_2"]
    with pytest.raises(ValidationError, match="unique"):
        PredictionsConfig(validators=[{"kind": "json_parse"}], graders=[{"type": "json_parse", "name": "json_parse"}])


def test_a_job_config_names_metadata_and_graders_and_old_configs_still_parse() -> None:
    old = JobConfig.model_validate({"model": "tiny", "dataset_id": "00000000-0000-0000-0000-000000000001"})
    assert old.name is None and old.metadata == {} and old.predictions.graders == []
    with pytest.raises(ValidationError):
        JobConfig.model_validate(
            {"model": "t", "dataset_id": str(old.dataset_id), "metadata": {str(i): "v" for i in range(17)}}
        )


def test_old_prediction_events_without_grades_stay_valid() -> None:
    old = (
        '{"type": "prediction", "schema_version": 1, "job_id": "00000000-0000-0000-0000-000000000001",'
        ' "round_index": 0, "epoch": 0, "step": 0, "sample_id": "row-000000", "sample_index": 0,'
        ' "prompt": "p", "prediction": "a"}'
    )
    event = parse_event(old)
    assert isinstance(event, PredictionEvent) and event.grades == {}


def test_round_summary_counts_passes_and_means_per_grader() -> None:
    judge = Judge(
        [
            GRADER.validate_python({"type": "json_parse", "name": "json"}),
            GRADER.validate_python({"type": "json_field", "name": "city", "path": "booking.city"}),
        ]
    )
    answers = ('{"booking": {"city": "Paris"}}', "{}", "nope")
    graded = [judge("", answer, {GROUND_TRUTH: BOOKING}).grades for answer in answers]
    graded.append(judge("", '{"booking": {"city": "Paris"}}', {}).grades)  # no truth: json only
    summary = summarize_grades(graded)
    assert summary["json"].model_dump() == {"graded": 4, "passed": 3, "mean_score": 0.75}
    assert summary["city"].model_dump() == {"graded": 3, "passed": 1, "mean_score": pytest.approx(1 / 3)}
