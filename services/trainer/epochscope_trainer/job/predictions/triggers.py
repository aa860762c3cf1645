"""When prediction rounds run: a TrainerCallback that only decides, and asks the round runner."""

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from epochscope_schemas.config import PredictionsConfig, SampleFrequency
from epochscope_schemas.events import RoundTrigger
from epochscope_trainer.job.predictions.round_runner import RoundRunner


class RoundTriggers(TrainerCallback):
    """A round at every epoch end, evaluation or N global steps, as the predictions config says, and once before
    training unless `baseline_round` is off; training's end waits for the background round in flight.

    Args:
        config: the job's predictions config (sample_frequency, step_interval, baseline_round).
        runner: runs the rounds (one per global step, whichever triggers land on it).
    """

    def __init__(self, config: PredictionsConfig, runner: RoundRunner) -> None:
        self.config = config
        self.runner = runner

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.config.baseline_round:
            self.runner.run(state, kwargs["model"], RoundTrigger.BASELINE)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        interval = self.config.step_interval
        if self.config.sample_frequency == SampleFrequency.STEPS and interval and state.global_step % interval == 0:
            self.runner.run(state, kwargs["model"], RoundTrigger.STEPS)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # A stop request (cancel, shutdown) also ends the epoch, part-way: that is no epoch's round.
        completed_epoch = abs((state.epoch or 0.0) - round(state.epoch or 0.0)) < 1e-6
        if self.config.sample_frequency == SampleFrequency.EPOCH and completed_epoch:
            self.runner.run(state, kwargs["model"], RoundTrigger.EPOCH)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.config.sample_frequency == SampleFrequency.EVAL:
            self.runner.run(state, kwargs["model"], RoundTrigger.EVAL)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.runner.wait()
