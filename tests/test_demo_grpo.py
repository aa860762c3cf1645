"""`epochscope demo --method grpo`: its job is a valid GRPO config rewarded by the demo's booking field graders (the
same graders its rounds run), and each progress point prints as the reward per step."""

from epochscope.demo import demo_job_config
from epochscope.demo_grpo import BOOKING_FIELDS, grpo_job_config, reward_line
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import GrpoMethod


def test_the_grpo_demo_job_is_rewarded_by_the_booking_field_graders() -> None:
    sft = demo_job_config("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", 3, 4)
    config = JobConfig.model_validate(grpo_job_config(sft, steps=5))
    assert isinstance(config.method, GrpoMethod) and config.method.max_steps == 5
    graders = {grader.name: grader for grader in config.predictions.graders}
    assert [component.grader for component in config.method.rewards] == list(BOOKING_FIELDS)
    assert all(graders[field].type == "json_field" for field in BOOKING_FIELDS)
    assert config.batch_size % config.method.num_generations == 0 and config.num_epochs == 1
    assert JobConfig.model_validate(sft).method.type == "sft"  # the SFT demo's config is left as it was


def test_a_progress_point_prints_its_total_and_each_component() -> None:
    point = {
        "step": 3,
        "reward": 0.5,
        "rewards": {"city": {"mean": 1.0, "pass_rate": 1.0}, "nights": {"mean": 0.25, "pass_rate": 0.25}},
    }
    assert reward_line(point) == "step 3: reward 0.500; city 1.00 (100% pass), nights 0.25 (25% pass)"
