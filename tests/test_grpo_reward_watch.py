"""A GRPO job's per-step reward watch: pass rates for the progress events, and the `reward_divergence` warning
published from the step's scores (pure logic, a list standing in for the publisher)."""

import math
import uuid

from epochscope_schemas.events import Envelope, RewardProgress, WarningEvent
from epochscope_schemas.methods import DivergenceWatch
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import reward_progress
from epochscope_trainer.job.methods.reward_divergence import DivergenceDetector
from epochscope_trainer.job.methods.reward_steps import RewardWatch
from epochscope_trainer.job.methods.rollouts import StepCompletions

NAN = math.nan


def _batch(step: int, scores: dict[str, list[float]]) -> StepCompletions:
    count = len(next(iter(scores.values())))
    return StepCompletions(step, ["p"] * count, ["c"] * count, scores, [0.0] * count)


def _watch(published: list[tuple[str, Envelope]]) -> RewardWatch:
    detector = DivergenceDetector(DivergenceWatch(window=3, min_change=0.25))
    job = JobIdentity(uuid.uuid4(), "t")
    return RewardWatch({"is_json": 1.0, "label": 0.5}, detector, lambda topic, e: published.append((topic, e)), job)


def test_pass_rates_count_only_graded_completions_at_each_threshold() -> None:
    watch = _watch([])
    rates = watch.observe(_batch(1, {"is_json": [1.0, 0.9, NAN, 1.0], "label": [0.5, 0.4, 0.0, 1.0]}))
    assert rates == {"is_json": 2 / 3, "label": 0.5}
    assert watch.observe(_batch(2, {"is_json": [NAN, NAN], "label": [0.0, 0.0]})) == {"is_json": None, "label": 0.0}


def test_format_passing_more_while_the_label_passes_less_publishes_one_warning() -> None:
    published: list[tuple[str, Envelope]] = []
    watch = _watch(published)
    for step, (fmt, label) in enumerate([(0.0, 1.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (1.0, 0.0)], start=1):
        watch.observe(_batch(step, {"is_json": [fmt, fmt], "label": [label, label]}))
    warnings = [event for _, event in published if isinstance(event, WarningEvent)]
    assert len(warnings) == 1 and warnings[0].code == "reward_divergence"
    assert "'is_json' rose" in warnings[0].message and "'label' fell" in warnings[0].message
    assert "steps 1-3" in warnings[0].message


def test_both_components_rising_publishes_nothing() -> None:
    published: list[tuple[str, Envelope]] = []
    watch = _watch(published)
    for step in range(1, 7):
        watch.observe(_batch(step, {"is_json": [step / 6], "label": [step / 6]}))
    assert published == []


def test_progress_carries_each_logged_component_and_nothing_for_sft() -> None:
    logs = {"loss": 0.1, "reward": 0.4, "rewards/is_json/mean": 0.8, "rewards/is_json/std": 0.1}
    logs |= {"rewards/is_json/pass_rate": 0.75, "rewards/label/mean": 0.2, "rewards/label/pass_rate": None}
    assert reward_progress(logs) == {
        "is_json": RewardProgress(mean=0.8, pass_rate=0.75),
        "label": RewardProgress(mean=0.2, pass_rate=None),
    }
    assert reward_progress({"loss": 0.1, "learning_rate": 1e-3}) is None
