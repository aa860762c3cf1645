"""The precision policy and the job config -> SFTConfig / LoraConfig mapping, as plain functions."""

import uuid
from pathlib import Path

import pytest
import torch

from epochscope_schemas.config import JobConfig
from epochscope_schemas.config import LoraConfig as LoraSettings
from epochscope_trainer.job.precision import precision_for
from epochscope_trainer.job.training_args import lora_config, sft_arguments, sft_config

CPU = precision_for(cuda_available=False, cuda_bf16_supported=False)
BF16_GPU = precision_for(cuda_available=True, cuda_bf16_supported=True)
DATASET_ID = uuid.uuid4()


def job(**extra: object) -> JobConfig:
    return JobConfig.model_validate(
        {"model": "m", "dataset_id": str(DATASET_ID), "num_epochs": 2, "batch_size": 4, "learning_rate": 1e-3}
        | {"max_length": 64, "predictions": {"seed": 7}}
        | extra
    )


@pytest.mark.parametrize(
    ("cuda", "bf16_supported", "expected"),
    [
        (False, False, ("cpu", False, "fp32")),
        (False, True, ("cpu", False, "fp32")),  # no CUDA: bf16 support is not asked about
        (True, False, ("cuda", False, "fp32")),  # a GPU without bf16
        (True, True, ("cuda", True, "bf16")),
    ],
)
def test_precision_follows_the_device(cuda: bool, bf16_supported: bool, expected: tuple[str, bool, str]) -> None:
    precision = precision_for(cuda, bf16_supported)
    assert (precision.device, precision.bf16, precision.label) == expected
    assert precision.torch_dtype() == (torch.bfloat16 if expected[1] else torch.float32)
    assert precision.activation_checkpointing is False


def test_a_cpu_job_trains_in_float32_without_activation_checkpointing(tmp_path: Path) -> None:
    args = sft_config(job(), CPU, tmp_path / "out", logging_steps=3, has_eval=False)
    assert (args.bf16, args.use_cpu, args.activation_checkpointing) == (False, True, False)
    assert (args.num_train_epochs, args.per_device_train_batch_size, args.per_device_eval_batch_size) == (2, 4, 4)
    assert (args.learning_rate, args.max_length, args.logging_steps, args.seed) == (1e-3, 64, 3, 7)
    assert (args.eval_strategy, args.save_strategy) == ("no", "no")
    assert args.output_dir == str(tmp_path / "out") and args.report_to == [] and args.disable_tqdm


def test_an_eval_split_evaluates_every_epoch(tmp_path: Path) -> None:
    args = sft_config(job(eval_fraction=0.25), CPU, tmp_path, logging_steps=1, has_eval=True)
    assert args.eval_strategy == "epoch"


def test_a_bf16_gpu_job_trains_in_bf16_on_the_gpu(tmp_path: Path) -> None:
    arguments = sft_arguments(job(), BF16_GPU, tmp_path, logging_steps=1, has_eval=False)
    assert (arguments["bf16"], arguments["use_cpu"], arguments["activation_checkpointing"]) == (True, False, False)
    cpu_arguments = sft_arguments(job(), CPU, tmp_path, logging_steps=1, has_eval=False)
    assert {k for k in arguments if arguments[k] != cpu_arguments[k]} == {"bf16", "use_cpu"}


def test_a_full_fine_tune_has_no_lora_config() -> None:
    assert lora_config(job().lora) is None


def test_lora_settings_map_onto_peft() -> None:
    lora = lora_config(LoraSettings(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"]))
    assert lora is not None
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.task_type) == (4, 8, 0.1, "CAUSAL_LM")
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    assert lora_config(LoraSettings()).target_modules == "all-linear"
