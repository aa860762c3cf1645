"""Supervised fine-tuning: TRL's SFTTrainer on chat, prompt/completion or text rows."""

from typing import TYPE_CHECKING

from trl import SFTTrainer

from epochscope_runtime.dataset_rows import training_record
from epochscope_trainer.job.training_args import lora_config, sft_config

if TYPE_CHECKING:
    from epochscope_trainer.job.methods import TrainingParts


class SupervisedFineTuning:
    """SFTTrainer with the job's hyperparameters; rows as TRL's conversational, prompt-completion or language
    modeling records (`training_record`, streamed to disk by job/inputs.py), collated by SFTTrainer itself; LoRA
    through PEFT when the job asks."""

    training_record = staticmethod(training_record)

    def build_trainer(self, parts: "TrainingParts") -> SFTTrainer:
        args = sft_config(
            parts.config, parts.precision, parts.output_dir, parts.logging_steps, has_eval=bool(parts.eval_rows)
        )
        return SFTTrainer(
            model=parts.model,
            args=args,
            train_dataset=parts.train_rows,
            eval_dataset=parts.eval_rows,
            processing_class=parts.tokenizer,
            peft_config=lora_config(parts.config.lora),
            callbacks=parts.callbacks,
        )
