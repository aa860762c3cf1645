"""Which answers of one sample become preference pairs (service_layer/pair_selection.py), on hand-made cases."""

from epochscope_api.service_layer.pair_selection import Answer, Pair, pair_row, sample_pairs

ALL = ["correction", "ground_truth", "passed"]


def answer(
    r: int, passed: bool | None, text: str | None = None, correction: str | None = None, cut: bool = False
) -> Answer:
    return Answer("row-000001", r, text or f"a{r}", "truth", passed, correction, cut)


def test_a_regression_pairs_the_right_answer_with_the_next_wrong_one_and_comes_first() -> None:
    regressions, others = sample_pairs([answer(0, False), answer(1, True), answer(2, None), answer(3, False)], ALL)
    assert regressions == [Pair("row-000001", "a1", "a3", True, (1, 3))]  # round 2 ungraded: no break in between
    assert others == [Pair("row-000001", "truth", "a0", False, (None, 0))]  # round 3 is a regression's already


def test_chosen_follows_the_rule_order_and_cut_answers_are_never_a_side() -> None:
    answers = [answer(0, False, correction="fixed"), answer(1, True), answer(2, False, cut=True), answer(3, False)]
    regressions, others = sample_pairs(answers, ALL)
    assert regressions == [Pair("row-000001", "a1", "a3", True, (1, 3))]  # round 2 was cut: 1 -> 3 is the flip
    assert others == [Pair("row-000001", "fixed", "a0", False, (None, 0))]  # the correction before the ground truth
    _, by_passing = sample_pairs([answer(0, False), answer(1, True)], ["passed"])
    assert by_passing == [Pair("row-000001", "a1", "a0", False, (1, 0))]
    _, by_latest_correction = sample_pairs([answer(0, False), answer(1, False, correction="c1")], ["correction"])
    assert [p.chosen for p in by_latest_correction] == ["c1", "c1"]
    _, same_text = sample_pairs([answer(0, False, text="truth")], ["ground_truth"])
    assert same_text == []
    _, nothing = sample_pairs([answer(0, False)], ["passed"])
    assert nothing == []


def test_rows_are_trl_preference_rows() -> None:
    pair = Pair("row-000001", "good", "bad", False, (None, 0))
    assert pair_row("Q?", pair) == {"prompt": "Q?", "chosen": "good", "rejected": "bad"}
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u", "name": "x"}]
    assert pair_row(chat, pair) == {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
