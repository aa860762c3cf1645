"""Which answers of one sample make preference pairs: pure functions over the sample's answers in round order.

Rejected is always an answer that failed the rule's grader. First the regressions: an answer that passed and the
next graded answer that failed (the timeline's flip), chosen = the passing one. Then each other failed answer, its
chosen the first source of the rule the sample has: the user's correction (on that answer, else the sample's latest),
the ground truth, or the sample's latest passing answer. An answer (or ground truth) the trainer cut to its size
limit is not the text it was: never a side of a pair. A pair whose sides are the same text is dropped.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from epochscope_api.preference_models import ChosenSource


@dataclass(frozen=True)
class Answer:
    sample_id: str
    round_index: int
    text: str
    ground_truth: str | None
    passed: bool | None  # None: the grader did not grade it
    correction: str | None
    cut: bool  # the trainer cut the answer to its size limit


@dataclass(frozen=True)
class Pair:
    sample_id: str
    chosen: str
    rejected: str
    regression: bool
    rounds: tuple[int | None, int]  # (the chosen answer's round, None when it is no answer; the rejected's round)


def answer_of(row: Any) -> Answer:
    """A stored answer (data/preference_pairs.py's row) as an Answer; a ground truth the trainer cut is none."""
    truncated = set(row["truncated"] or [])
    return Answer(
        sample_id=row["sample_id"],
        round_index=row["round_index"],
        text=row["prediction"],
        ground_truth=None if "ground_truth" in truncated else row["ground_truth"],
        passed=row["passed"],
        correction=row["correction"],
        cut="prediction" in truncated,
    )


def sample_pairs(answers: Sequence[Answer], sources: Sequence[ChosenSource]) -> tuple[list[Pair], list[Pair]]:
    """(regressions, other pairs) of one sample's answers, each list in round order."""
    graded = [a for a in answers if a.passed is not None and not a.cut]
    regressions = [
        Pair(a.sample_id, a.text, b.text, True, (a.round_index, b.round_index))
        for a, b in zip(graded, graded[1:], strict=False)
        if a.passed and not b.passed
    ]
    in_regression = {pair.rounds[1] for pair in regressions}
    passing = [a for a in graded if a.passed]
    corrections = [a.correction for a in answers if a.correction]
    others = []
    for answer in graded:
        if answer.passed or answer.round_index in in_regression:
            continue
        chosen = _chosen(answer, sources, corrections, passing)
        if chosen is not None:
            others.append(Pair(answer.sample_id, chosen[0], answer.text, False, (chosen[1], answer.round_index)))
    return [p for p in regressions if p.chosen != p.rejected], [p for p in others if p.chosen != p.rejected]


def _chosen(
    failed: Answer, sources: Sequence[ChosenSource], corrections: list[str], passing: list[Answer]
) -> tuple[str, int | None] | None:
    """(the better answer, its round if it is one) by the first source the sample has; None if none has."""
    for source in sources:
        if source == "correction" and (failed.correction or corrections):
            return failed.correction or corrections[-1], None
        if source == "ground_truth" and failed.ground_truth is not None:
            return failed.ground_truth, None
        if source == "passed" and passing:
            return passing[-1].text, passing[-1].round_index
    return None


def pair_row(prompt: list[dict[str, Any]] | str, pair: Pair) -> dict[str, Any]:
    """A pair as a row of TRL's preference format: conversational (`prompt` the messages before the answer, each
    side one assistant turn) for chat samples, else standard (`prompt`, `chosen`, `rejected` texts)."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "chosen": pair.chosen, "rejected": pair.rejected}
    return {
        "prompt": [{"role": message["role"], "content": message["content"]} for message in prompt],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }
