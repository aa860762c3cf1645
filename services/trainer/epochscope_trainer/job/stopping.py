"""`predictions.stop_when`: end training early, judged on the rounds' answers, like early stopping on eval loss."""

from typing import Any

from accelerate.utils import gather_object
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from epochscope_schemas.checkpoints import StopWhen, metric_label, round_metric
from epochscope_schemas.events import RoundSummaryEvent, RoundTrigger


class StopRule:
    """Watches round summaries (the baseline round excluded) and names the reason once the rule is met."""

    def __init__(self, config: StopWhen) -> None:
        self.config = config
        self.reason: str | None = None
        self._streak = 0
        self._best: float | None = None
        self._since_best = 0

    def observe(self, summary: RoundSummaryEvent) -> str | None:
        """Count this round; the stop reason, once met."""
        if self.reason is not None or summary.trigger == RoundTrigger.BASELINE:
            return self.reason
        config = self.config
        value = round_metric(summary.model_dump(), config.metric)
        label = metric_label(config.metric)
        at = f"stopped early at round {summary.round_index}"
        if config.threshold is not None:
            self._streak = self._streak + 1 if value is not None and value >= config.threshold else 0
            if self._streak >= config.rounds:
                rounds = "round" if config.rounds == 1 else "rounds"
                self.reason = f"{at}: {label} {_number(value)} for {config.rounds} {rounds}"
        else:
            if value is not None and (self._best is None or value > self._best):
                self._best, self._since_best = value, 0
            else:
                self._since_best += 1
            if config.patience is not None and self._since_best >= config.patience:
                self.reason = f"{at}: {label} did not improve on {_number(self._best)} for {config.patience} rounds"
        return self.reason


class StopOnRule(TrainerCallback):
    """Stops training at the next step end or epoch end once the rule names a reason (on any rank)."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule

    def _check(self, control: TrainerControl) -> None:
        if any(gather_object([self.rule.reason is not None])):
            control.should_training_stop = True

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._check(control)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._check(control)


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"
