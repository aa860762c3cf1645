"""The reward-hacking detector over per-step mean scores (pure logic)."""

from epochscope_schemas.methods import DivergenceWatch
from epochscope_trainer.job.methods.reward_divergence import Divergence, DivergenceDetector

WATCH = DivergenceWatch(window=3, min_change=0.2)


def _run(means_per_step: list[dict[str, float | None]]) -> list[Divergence]:
    detector = DivergenceDetector(WATCH)
    found = [detector.observe(step, means) for step, means in enumerate(means_per_step, start=1)]
    return [divergence for divergence in found if divergence is not None]


def test_format_rising_while_content_falls_is_one_warning_naming_both_and_the_steps() -> None:
    steps = [
        {"is_json": 0.1, "label": 0.6},
        {"is_json": 0.2, "label": 0.6},
        {"is_json": 0.5, "label": 0.5},
        {"is_json": 0.8, "label": 0.3},  # steps 2..4: is_json +0.6, label -0.3
        {"is_json": 0.9, "label": 0.1},  # still diverging: the same episode, no second warning
        {"is_json": 1.0, "label": 0.0},
    ]
    found = _run(steps)
    assert len(found) == 1
    (divergence,) = found
    assert (divergence.rising, divergence.falling) == ("is_json", "label")
    assert (divergence.first_step, divergence.last_step) == (2, 4)
    assert abs(divergence.rise - 0.6) < 1e-9 and abs(divergence.fall - 0.3) < 1e-9
    message = divergence.message()
    assert "'is_json'" in message and "'label'" in message and "steps 2-4" in message


def test_both_rising_is_no_warning() -> None:
    steps = [{"is_json": 0.1 * i, "label": 0.1 * i} for i in range(8)]
    assert _run(steps) == []


def test_noise_under_the_minimum_change_is_no_warning() -> None:
    steps = [{"is_json": 0.5 + d, "label": 0.5 - d} for d in (0.0, 0.05, -0.05, 0.09, 0.0, 0.09, -0.09)]
    assert _run(steps) == []


def test_a_component_without_a_mean_is_left_out() -> None:
    steps = [{"is_json": 0.0, "label": None}, {"is_json": 0.5, "label": 0.9}, {"is_json": 1.0, "label": 0.0}]
    assert _run(steps) == []


def test_a_new_episode_after_a_quiet_window_warns_again() -> None:
    rising_falling = [{"a": 0.0, "b": 1.0}, {"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 0.0}]
    quiet = [{"a": 1.0, "b": 0.0}] * 3
    falling_rising = [{"a": 0.5, "b": 0.5}, {"a": 0.0, "b": 1.0}] + [{"a": 0.0, "b": 1.0}] * 3
    found = _run(rising_falling + quiet + falling_rising)
    assert [(d.rising, d.falling) for d in found] == [("a", "b"), ("b", "a")]
