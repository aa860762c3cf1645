"""Training methods: what differs between kinds of job is the TRL trainer and how it reads the rows; prediction
rounds, checkpoints, stop_when, progress and publishing are the runner's, the same for every method.

A method is a `TrainingMethod`: given the job's `TrainingParts` it returns a ready `transformers.Trainer` (TRL's
SFTTrainer, DPOTrainer, GRPOTrainer) with the parts' callbacks attached. `method_for` picks it by the job config's
`method.type`. A new method is a module here and an entry in `_METHODS` (and its config model in
`epochscope_schemas.methods`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from epochscope_runtime.dataset_rows import Example
from epochscope_schemas.config import JobConfig
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish
from epochscope_trainer.job.methods.dpo import DirectPreferenceOptimization
from epochscope_trainer.job.methods.grpo import GroupRelativePolicyOptimization
from epochscope_trainer.job.methods.sft import SupervisedFineTuning
from epochscope_trainer.job.precision import Precision


@dataclass(frozen=True)
class TrainingParts:
    """Everything a method builds its trainer from."""

    config: JobConfig
    model: Any
    tokenizer: Any
    train_rows: Any  # a datasets.Dataset of the method's TRL records (its training_record), memory-mapped on disk
    eval_rows: Any | None  # the same, for evaluation; None without an eval set
    precision: Precision
    output_dir: Path
    logging_steps: int  # progress events at this step interval
    callbacks: list[Any]  # the runner's: predictions, progress, stopping
    publish: Publish  # events a method publishes itself (GRPO's rollouts)
    job: JobIdentity
    text_max_bytes: int  # each text an event carries is cut to this many UTF-8 bytes


class TrainingMethod(Protocol):
    # A usable row as the method's trainer reads it (a module-level function: datasets fingerprints it).
    training_record: Callable[[Example], dict[str, Any]]

    def build_trainer(self, parts: TrainingParts) -> Any:
        """The TRL trainer for the job, with `parts.callbacks`; `train()` is the runner's to call."""
        ...


_METHODS: dict[str, Callable[[], TrainingMethod]] = {
    "sft": SupervisedFineTuning,
    "grpo": GroupRelativePolicyOptimization,
    "dpo": DirectPreferenceOptimization,
}


def method_for(config: JobConfig) -> TrainingMethod:
    return _METHODS[config.method.type]()
