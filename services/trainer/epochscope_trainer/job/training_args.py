"""A job's config as TRL and PEFT take it: SFTConfig for the trainer, LoraConfig for LoRA jobs."""

from pathlib import Path
from typing import Any

from peft import LoraConfig
from trl import SFTConfig

from epochscope_schemas.config import JobConfig
from epochscope_schemas.config import LoraConfig as LoraSettings
from epochscope_trainer.job.precision import Precision


def sft_config(
    config: JobConfig, precision: Precision, output_dir: Path, logging_steps: int, has_eval: bool
) -> SFTConfig:
    """Hyperparameters from the job, precision from the policy; no checkpoints, no reporting, no tqdm."""
    return SFTConfig(**sft_arguments(config, precision, output_dir, logging_steps, has_eval))


def sft_arguments(
    config: JobConfig, precision: Precision, output_dir: Path, logging_steps: int, has_eval: bool
) -> dict[str, Any]:
    """SFTConfig's arguments. Apart from `sft_config` because SFTConfig refuses bf16 on a machine without a
    bf16 GPU, and the GPU mapping is checked on any machine."""
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=config.num_epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_length=config.max_length,
        logging_steps=logging_steps,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",
        report_to=[],
        bf16=precision.bf16,
        activation_checkpointing=precision.activation_checkpointing,
        use_cpu=not precision.use_cuda,
        seed=config.predictions.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def lora_config(lora: LoraSettings | None) -> LoraConfig | None:
    """PEFT's LoraConfig for a LoRA job; None trains every weight."""
    if lora is None:
        return None
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
