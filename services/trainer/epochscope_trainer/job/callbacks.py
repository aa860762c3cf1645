"""TRL/transformers callbacks of every job: progress events, and stopping on a cancel or a shutdown. (Prediction
rounds are `job.predictions`.)"""

import math
import time
from collections.abc import Callable
from typing import Any

from accelerate.utils import gather_object
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from epochscope_schemas.events import Envelope, ProgressEvent, RewardProgress
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.child_protocol import JobIdentity

Publish = Callable[[str, Envelope], None]


class ProgressCallback(TrainerCallback):
    """A progress event at every log step (logging_steps): step, epoch, loss, learning rate, throughput, and a GRPO
    job's rewards as TRL logs them (`reward`, `rewards/<name>/mean`, and our `rewards/<name>/pass_rate`), and a DPO
    job's (`rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`)."""

    def __init__(self, publish: Publish, job: JobIdentity, num_epochs: int) -> None:
        self.publish = publish
        self.job = job
        self.num_epochs = num_epochs
        self._started = time.perf_counter()
        self._samples_seen = 0

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._samples_seen += args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        elapsed = time.perf_counter() - self._started
        self.publish(
            TRAINING_STATUS,
            ProgressEvent(
                **self.job.envelope(),
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(state.epoch or 0.0, 4),
                num_epochs=self.num_epochs,
                loss=logs.get("loss"),
                learning_rate=logs.get("learning_rate"),
                samples_per_second=self._samples_seen / elapsed if elapsed > 0 else None,
                rewards=reward_progress(logs),
                reward=logs.get("reward"),
                **preference_progress(logs),
            ),
        )


def reward_progress(logs: dict[str, float | None]) -> dict[str, RewardProgress] | None:
    """Each reward component's logged mean and pass rate by name; None for a job without rewards (SFT)."""
    names = {key.split("/")[1] for key in logs if key.startswith("rewards/") and key.count("/") == 2}
    if not names:
        return None
    return {
        name: RewardProgress(mean=logs.get(f"rewards/{name}/mean"), pass_rate=logs.get(f"rewards/{name}/pass_rate"))
        for name in sorted(names)
    }


# The progress event's DPO fields and the metrics TRL's DPOTrainer logs for them.
PREFERENCE_METRICS = {
    "chosen_reward": "rewards/chosen",
    "rejected_reward": "rewards/rejected",
    "reward_margin": "rewards/margins",
    "reward_accuracy": "rewards/accuracies",
}


def preference_progress(logs: dict[str, float | None]) -> dict[str, float | None]:
    """A DPO job's logged rewards, margin and accuracy as the progress event's fields (None where TRL logged none,
    or a value that is not finite); empty for other methods."""
    if not any(key in logs for key in PREFERENCE_METRICS.values()):
        return {}
    values = {field: logs.get(key) for field, key in PREFERENCE_METRICS.items()}
    return {field: value if value is not None and math.isfinite(value) else None for field, value in values.items()}


class StopOnRequest(TrainerCallback):
    """Stops training at the next step once `requested()` is true on any rank (a cancel or a shutdown).

    Every rank must agree to stop at the same step, or the others hang in the next collective.
    """

    def __init__(self, requested: Callable[[], bool]) -> None:
        self.requested = requested

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if any(gather_object([self.requested()])):
            control.should_training_stop = True
