"""Supervised fine-tuning: TRL's SFTTrainer on chat, prompt/completion or text rows."""

from typing import TYPE_CHECKING, Any

from trl import SFTTrainer

from epochscope_runtime.dataset_rows import training_record
from epochscope_schemas.methods import SftMethod
from epochscope_trainer.job.methods.sft_labels import labelled_tokens
from epochscope_trainer.job.training_args import lora_config, sft_config

if TYPE_CHECKING:
    from epochscope_trainer.job.methods import TrainingParts


class SupervisedFineTuning:
    """SFTTrainer with the job's hyperparameters; rows (`training_record`, streamed to disk by job/inputs.py)
    tokenized here with the labels of what the job trains on (sft_labels.py), then truncated and collated by
    SFTTrainer; LoRA through PEFT when the job asks."""

    training_record = staticmethod(training_record)

    def build_trainer(self, parts: "TrainingParts") -> SFTTrainer:
        method = parts.config.method
        args = sft_config(
            parts.config, parts.precision, parts.output_dir, parts.logging_steps, has_eval=bool(parts.eval_rows)
        )
        trainer = SFTTrainer(
            model=parts.model,
            args=args,
            train_dataset=labelled(parts.train_rows, parts.tokenizer, method),
            eval_dataset=labelled(parts.eval_rows, parts.tokenizer, method) if parts.eval_rows else None,
            processing_class=parts.tokenizer,
            peft_config=lora_config(parts.config.lora),
            callbacks=parts.callbacks,
        )
        if len(trainer.train_dataset) == 0:  # SFTTrainer leaves out the rows with no label within max_length
            raise ValueError(
                f"no training row has an answer token within max_length {parts.config.max_length} "
                f"(train_on {method.train_on}; assistant turns of weight 0 are not trained on)"
            )
        return trainer


def labelled(rows: Any, tokenizer: Any, method: SftMethod) -> Any:
    """The rows as `input_ids` and `labels` (SFTTrainer uses a `labels` column as is): a datasets.Dataset written
    to disk batch by batch beside the rows, never held whole."""
    return rows.map(
        labelled_tokens,
        fn_kwargs={"tokenizer": tokenizer, "method": method},
        remove_columns=rows.column_names,
        desc="Labelling what SFT trains on",
    )
