"""The scheduling benchmark's fixed trace and its peer, the ideal schedule of the dispatcher's policy (pure logic)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from scheduling import FULL, SMOKE, trace  # noqa: E402
from scheduling_ideal import Job, ideal_waits  # noqa: E402

FULL_TRACE = [
    (0.0, "cat", False), (2.169, "ben", True), (10.887, "ben", False), (10.887, "ben", False), (10.887, "ben", True),
    (10.887, "ben", True), (10.887, "ben", False), (10.887, "cat", False), (22.671, "ben", False),
    (29.591, "cat", False), (68.397, "ann", True), (77.807, "ann", True), (85.143, "cat", False),
    (92.09, "ben", False), (104.936, "cat", True), (108.098, "cat", False),
]  # fmt: skip


def test_the_trace_is_fixed() -> None:
    """The same arrivals every call and every run, whatever the global random state: the one trace the published
    figures measured (16 jobs, 6 long, ben's burst of 5 at one instant). Changing it means measuring again."""
    import random

    random.seed(1)
    first = trace(FULL)
    random.seed(2)
    assert trace(FULL) == first
    assert [(arrival.at, arrival.user, arrival.long) for arrival in first] == FULL_TRACE
    assert len(trace(SMOKE)) == 4


def test_a_job_waits_for_a_free_trainer() -> None:
    jobs = [Job(0.0, "ann", 1.0, 9.0), Job(0.0, "bob", 1.0, 19.0), Job(2.0, "cat", 1.0, 5.0)]
    # two trainers: the third job is dispatched when the first ends (10 s), then loads for 1 s
    assert ideal_waits(jobs, trainers=2, per_user=2) == pytest.approx([1.0, 1.0, 9.0])


def test_users_take_turns() -> None:
    """A burst from one user does not hold back a later job of another: the least recently served user goes first."""
    burst = [Job(0.0, "ben", 0.0, 10.0) for _ in range(3)]
    jobs = [*burst, Job(1.0, "ann", 0.0, 10.0)]
    # one trainer: ben's first job runs 0-10, then ann (never served) 10-20, then ben's second 20-30, third 30-40
    assert ideal_waits(jobs, trainers=1, per_user=2) == pytest.approx([0.0, 20.0, 30.0, 9.0])


def test_per_user_bounds_a_user() -> None:
    jobs = [Job(0.0, "ben", 0.0, 10.0) for _ in range(3)]
    assert ideal_waits(jobs, trainers=3, per_user=2) == pytest.approx([0.0, 0.0, 10.0])
