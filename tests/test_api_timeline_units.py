"""The answer timeline's pure logic (first pass, flips) and the significance of a paired change (exact McNemar,
paired bootstrap, the sentence), against hand-worked cases; neither scipy nor statsmodels is installed, so the
McNemar p-values are also checked against a brute-force two-sided binomial test written here with fractions."""

from fractions import Fraction
from math import comb

import pytest

from epochscope_api.service_layer.answer_flips import Flip, grader_history, paired_flips
from epochscope_api.service_layer.paired_changes import paired_comparison
from epochscope_api.service_layer.significance import change_sentence, mcnemar_exact, paired_bootstrap


def test_first_pass_and_every_flip_between_graded_rounds() -> None:
    history = grader_history([(0, False), (1, True), (2, False), (4, True), (5, True)])
    assert history.first_passed_round == 1
    assert history.flips == [Flip("fix", 0, 1), Flip("regression", 1, 2), Flip("fix", 2, 4)]
    assert grader_history([(3, True), (4, True)]).first_passed_round == 3
    assert grader_history([(3, True), (4, True)]).flips == []
    never = grader_history([(0, False), (1, False)])
    assert (never.first_passed_round, never.flips) == (None, [])
    assert grader_history([]).first_passed_round is None


def test_paired_flips_count_only_samples_graded_on_both_sides() -> None:
    before = {"a": True, "b": False, "c": True, "d": False, "only-before": True}
    after = {"a": False, "b": True, "c": True, "d": True, "only-after": False}
    assert paired_flips(before, after) == (["b", "d"], ["a"])


@pytest.mark.parametrize(
    ("fixes", "regressions", "p_value"),
    [
        (3, 1, 10 / 16),  # n = 4: 2 * (C(4,0) + C(4,1)) / 2^4
        (0, 5, 2 / 32),  # n = 5: 2 * C(5,0) / 2^5
        (10, 0, 2 / 1024),
        (1, 6, 16 / 128),  # n = 7: 2 * (1 + 7) / 2^7
        (2, 2, 1.0),  # 2 * 11/16 capped at 1
        (0, 0, 1.0),  # no discordant pair: nothing changed
    ],
)
def test_exact_mcnemar_hand_worked(fixes: int, regressions: int, p_value: float) -> None:
    assert mcnemar_exact(fixes, regressions) == pytest.approx(p_value, abs=1e-12)
    assert mcnemar_exact(regressions, fixes) == pytest.approx(p_value, abs=1e-12)


def _two_sided_binomial(successes: int, trials: int) -> Fraction:
    """The textbook two-sided test: the probability of every outcome no more likely than the observed one."""
    observed = comb(trials, successes)
    as_likely = (comb(trials, k) for k in range(trials + 1) if comb(trials, k) <= observed)
    return sum((Fraction(ways, 2**trials) for ways in as_likely), Fraction(0))


@pytest.mark.parametrize("discordant", range(1, 31))
def test_exact_mcnemar_is_the_two_sided_binomial_test(discordant: int) -> None:
    for fixes in range(discordant + 1):
        expected = min(Fraction(1), _two_sided_binomial(fixes, discordant))
        assert mcnemar_exact(fixes, discordant - fixes) == pytest.approx(float(expected), rel=1e-12)


def test_bootstrap_of_constant_scores_is_the_point() -> None:
    interval = paired_bootstrap([0.5] * 5, [1.0] * 5, resamples=500, seed=1)
    assert interval is not None
    assert (interval.before, interval.after, interval.difference) == ((0.5, 0.5), (1.0, 1.0), (0.5, 0.5))


def test_bootstrap_hand_worked_two_samples() -> None:
    """Two samples, after = (0, 1), before = (0, 0): a resample's mean after is 0, 0.5 or 1 with chances 1/4, 1/2,
    1/4, so its 95% percentile interval is (0, 1); the difference is the same, before stays 0."""
    interval = paired_bootstrap([0.0, 0.0], [0.0, 1.0], resamples=2000, seed=7)
    assert interval is not None
    assert (interval.before, interval.after, interval.difference) == ((0.0, 0.0), (0.0, 1.0), (0.0, 1.0))


def test_bootstrap_keeps_pairs_together_and_is_seeded() -> None:
    """Paired: every sample gains exactly 0.25, so the difference never varies even though each mean does."""
    before = [0.0, 0.25, 0.5, 0.75]
    after = [x + 0.25 for x in before]
    interval = paired_bootstrap(before, after, resamples=1000, seed=3)
    assert interval is not None and interval.difference == (0.25, 0.25)
    assert interval.before[0] < interval.before[1]
    assert paired_bootstrap(before, after, 1000, 3) == interval
    assert paired_bootstrap([], [], 1000, 3) is None


def test_sentence_says_whether_the_change_is_significant() -> None:
    assert (
        change_sentence("round 2", "round 4", 3, 1, mcnemar_exact(3, 1))
        == "round 4 vs round 2: +3 passes, -1, p = 0.62: not significant at this sample size"
    )
    assert change_sentence("round 0", "round 9", 10, 0, mcnemar_exact(10, 0)).endswith(
        "p = 0.002: significant at the 5% level"
    )


def _verdict(passed: bool) -> dict[str, object]:
    return {"passed": passed, "score": float(passed)}


def test_paired_comparison_over_shared_samples_and_graders() -> None:
    before = {
        s: {"json": _verdict(p), "old": _verdict(True)} for s, p in zip("abcd", [True, False, True, False], strict=True)
    }
    after = {s: {"json": _verdict(p)} for s, p in zip("abcde", [False, True, True, True, True], strict=True)}
    comparison = paired_comparison("round 0", "round 1", before, after, resamples=200, seed=0)
    assert comparison.shared_samples == 4
    (json_change,) = comparison.graders  # "old" graded before only
    assert (json_change.fixes, json_change.regressions) == (["b", "d"], ["a"])
    assert (json_change.passed_before, json_change.passed_after, json_change.graded) == (2, 3, 4)
    assert json_change.p_value == 1.0 and not json_change.significant  # n = 3: 2 * (1 + 3) / 8, capped
    assert (json_change.mean_score_before, json_change.mean_score_after) == (0.5, 0.75)
    assert json_change.summary == "json: round 1 vs round 0: +2 passes, -1, p = 1: not significant at this sample size"
