"""A job's wall-clock limit (EPOCHSCOPE_TRAINER_JOB_MAX_SECONDS): training stops at the first step end past it, on
every rank at the same step (as StopOnRequest), and the job then fails saying so."""

import time
from collections.abc import Callable
from typing import Any

from accelerate.utils import gather_object
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

SETTING = "EPOCHSCOPE_TRAINER_JOB_MAX_SECONDS"


class TimeLimitExceeded(RuntimeError):
    """The job ran past its wall-clock limit; the message names the limit and the setting."""


class TimeLimit(TrainerCallback):
    """Counts from its creation (the job's start: loading the data and the model count too)."""

    def __init__(self, max_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_seconds = max_seconds
        self._clock = clock
        self._deadline = clock() + max_seconds
        self.stopped = False

    def passed(self) -> bool:
        return self._clock() >= self._deadline

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if any(gather_object([self.passed()])):
            self.stopped = True
            control.should_training_stop = True

    def raise_if_stopped(self, step: int) -> None:
        if self.stopped:
            raise TimeLimitExceeded(
                f"the job ran past its wall-clock limit of {self.max_seconds:g} s ({SETTING}); stopped at step {step}"
            )
