"""Direct preference optimisation: TRL's DPOTrainer on preference rows (normalised by the runtime's
preference_rows to TRL's prompt/chosen/rejected, text or conversational).

With LoRA the reference model is the base model itself with the adapter disabled (DPOTrainer does so when it is
given a `peft_config` and no `ref_model`): no second copy of the weights. Without LoRA, DPOTrainer keeps a frozen
copy of the starting model as the reference.
"""

from typing import TYPE_CHECKING, Any

from trl import DPOConfig, DPOTrainer

from epochscope_runtime.dataset_rows import Example
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import DpoMethod
from epochscope_trainer.job.precision import Precision
from epochscope_trainer.job.training_args import lora_config, sft_arguments

if TYPE_CHECKING:
    from epochscope_trainer.job.methods import TrainingParts

PAIR_FIELDS = ("prompt", "chosen", "rejected")


def preference_record(example: Example) -> dict[str, Any]:
    """The row as DPOTrainer reads it: prompt, chosen and rejected (text, or lists of role/content messages)."""
    if "chosen" not in example.data:
        raise ValueError(f"row {example.row + 1} is not a preference row (prompt, chosen, rejected): DPO cannot use it")
    return {name: example.data[name] for name in PAIR_FIELDS}


def dpo_arguments(
    config: JobConfig, precision: Precision, output_dir: Any, logging_steps: int, has_eval: bool
) -> dict[str, Any]:
    """DPOConfig's arguments: the trainer arguments every method shares (max_length bounds prompt plus answer), and
    the method's own."""
    method = config.method
    assert isinstance(method, DpoMethod)
    return {
        **sft_arguments(config, precision, output_dir, logging_steps, has_eval),
        "beta": method.beta,
        "max_steps": method.max_steps or -1,
    }


class DirectPreferenceOptimization:
    """DPOTrainer with the job's hyperparameters; LoRA through PEFT when the job asks, the reference then being the
    base model with the adapter disabled."""

    training_record = staticmethod(preference_record)

    def build_trainer(self, parts: "TrainingParts") -> DPOTrainer:
        arguments = dpo_arguments(
            parts.config, parts.precision, parts.output_dir, parts.logging_steps, has_eval=bool(parts.eval_rows)
        )
        trainer = DPOTrainer(
            model=parts.model,
            ref_model=None,
            args=DPOConfig(**arguments),
            train_dataset=parts.train_rows,
            eval_dataset=parts.eval_rows,
            processing_class=parts.tokenizer,
            peft_config=lora_config(parts.config.lora),
            callbacks=parts.callbacks,
        )
        if len(trainer.train_dataset) == 0:  # DPOTrainer leaves out the pairs whose prompt fills max_length
            raise ValueError(f"no preference pair has an answer token within max_length {parts.config.max_length}")
        return trainer
