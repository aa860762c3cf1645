"""`epochscope demo --method grpo`: the demo task trained by GRPO instead of SFT.

The same model, data and prediction rounds as the SFT demo; the reward is the booking's fields, checked by the
job's own `json_field` graders (city, country, nights against the request's booking), each a third of the reward.
Each training step's reward (the total's mean and each component's mean and pass rate) is printed as the trainer
logs it, beside each round's predictions.
"""

from typing import Any

import httpx
from rich.console import Console

BOOKING_FIELDS = ("city", "country", "nights")


def grpo_job_config(sft_config: dict[str, Any], steps: int) -> dict[str, Any]:
    """The demo job (`sft_config`, its predictions and graders kept) with a GRPO method rewarded by the booking's
    field graders: `steps` steps of 2 prompts x 4 completions of at most 40 tokens (a booking is about 25)."""
    config = dict(sft_config)
    config["name"] = "demo booking (GRPO)"
    config["num_epochs"] = 1
    config["batch_size"] = 8  # 2 prompts x 4 generations per step
    config["learning_rate"] = 5e-4
    config["method"] = {
        "type": "grpo",
        "rewards": [{"grader": field} for field in BOOKING_FIELDS],
        "num_generations": 4,
        "max_completion_length": 40,
        "temperature": 1.0,
        "max_steps": steps,
        "rollouts": {"log": "all"},
    }
    return config


def reward_line(point: dict[str, Any]) -> str:
    """One progress point's rewards: the total's mean, then each component's mean and pass rate."""
    components = ", ".join(
        f"{name} {reward['mean']:.2f} ({reward['pass_rate']:.0%} pass)"
        for name, reward in (point.get("rewards") or {}).items()
        if reward.get("mean") is not None and reward.get("pass_rate") is not None
    )
    total = "-" if point.get("reward") is None else f"{point['reward']:.3f}"
    return f"step {point['step']}: reward {total}; {components}"


class RewardFollower:
    """Prints each new progress point's rewards once."""

    def __init__(self, client: httpx.Client, job_id: str, console: Console) -> None:
        self.client, self.job_id, self.console = client, job_id, console
        self.last_step: int | None = None
        self.points: list[dict[str, Any]] = []

    def poll(self) -> None:
        while True:
            params = {} if self.last_step is None else {"after_step": self.last_step}
            page = self.client.get(f"/v1/jobs/{self.job_id}/progress", params=params).raise_for_status().json()
            for point in page["items"]:
                self.console.print(reward_line(point))
                self.points.append(point)
                self.last_step = point["step"]
            if not page.get("has_more"):
                return
