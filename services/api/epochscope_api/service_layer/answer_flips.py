"""An answer's history under one grader: the round it first passed, and every flip between consecutive rounds
it was graded in (a regression: passed, then failed; a fix: failed, then passed). Pure functions over verdicts."""

from dataclasses import dataclass
from typing import Literal

FlipKind = Literal["regression", "fix"]


@dataclass(frozen=True)
class Flip:
    kind: FlipKind
    from_round: int
    to_round: int


@dataclass(frozen=True)
class GraderHistory:
    first_passed_round: int | None
    flips: list[Flip]


def grader_history(verdicts: list[tuple[int, bool]]) -> GraderHistory:
    """`verdicts`: (round index, passed) in round order, only the rounds the grader graded the answer in."""
    first_passed = next((round_index for round_index, passed in verdicts if passed), None)
    flips = [
        Flip("fix" if passed else "regression", before_round, round_index)
        for (before_round, before), (round_index, passed) in zip(verdicts, verdicts[1:], strict=False)
        if passed != before
    ]
    return GraderHistory(first_passed, flips)


def paired_flips(before: dict[str, bool], after: dict[str, bool]) -> tuple[list[str], list[str]]:
    """(fixes, regressions) between two verdicts per sample id, over the samples graded in both, in id order."""
    shared = sorted(before.keys() & after.keys())
    fixes = [sample_id for sample_id in shared if after[sample_id] and not before[sample_id]]
    regressions = [sample_id for sample_id in shared if before[sample_id] and not after[sample_id]]
    return fixes, regressions
