"""DPO jobs in the trainer: preference rows as DPOTrainer reads them, its arguments, the reference model under LoRA
(the base with the adapter disabled, no second copy), the DPO metrics in the progress events, and a real job on the
tiny model (in-process, local object store, no broker)."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from test_trainer_job_inputs import final_message, run_job, store  # noqa: F401  (store is a fixture)
from trainer_fakes import dir_model, jsonl_bytes, put_dataset, start_event

from epochscope_runtime.dataset_rows import Example, RowFormat
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus, ProgressEvent
from epochscope_trainer.job.callbacks import preference_progress
from epochscope_trainer.job.methods.dpo import dpo_arguments, preference_record
from epochscope_trainer.job.precision import Precision
from epochscope_trainer.settings import TrainerSettings


def preference_rows(count: int) -> list[dict[str, Any]]:
    """OpenAI's preference format: the reader normalises it to TRL's conversational prompt/chosen/rejected."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": str(2 * i)}],
            "non_preferred_output": [{"role": "assistant", "content": f"I cannot add {i}."}],
        }
        for i in range(count)
    ]


def test_a_preference_row_is_prompt_chosen_and_rejected_and_nothing_else_is() -> None:
    data = {"prompt": "2+2=", "chosen": "4", "rejected": "5", "label": "four"}
    assert preference_record(Example(0, data)) == {"prompt": "2+2=", "chosen": "4", "rejected": "5"}
    with pytest.raises(ValueError, match="row 3 is not a preference row"):
        preference_record(Example(2, {"prompt": "2+2=", "completion": "4"}))


def test_dpo_arguments_carry_beta_and_max_steps() -> None:
    config = JobConfig(model="tiny", dataset_id=uuid.uuid4(), method={"type": "dpo", "beta": 0.5, "max_steps": 3})
    arguments = dpo_arguments(config, Precision(use_cuda=False, bf16=False), "o", 1, False)
    assert (arguments["beta"], arguments["max_steps"], arguments["max_length"]) == (0.5, 3, config.max_length)
    unbounded = config.model_copy(update={"method": config.method.model_copy(update={"max_steps": None})})
    assert dpo_arguments(unbounded, Precision(use_cuda=False, bf16=False), "o", 1, False)["max_steps"] == -1


def test_the_dpo_metrics_become_the_progress_fields() -> None:
    logs = {"loss": 0.6, "rewards/chosen": 0.2, "rewards/rejected": -0.1, "rewards/margins": 0.3}
    assert preference_progress(logs | {"rewards/accuracies": float("nan")}) == {
        "chosen_reward": 0.2,
        "rejected_reward": -0.1,
        "reward_margin": 0.3,
        "reward_accuracy": None,
    }
    assert preference_progress({"loss": 0.6, "reward": 1.0, "rewards/is_json/mean": 1.0}) == {}  # GRPO's, not DPO's


def test_a_lora_dpo_job_trains_against_the_base_model_and_logs_its_metrics(
    store: tuple[TrainerSettings, ObjectStore],  # noqa: F811
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, objects = store
    train = put_dataset(objects, jsonl_bytes(preference_rows(8)), row_format=RowFormat.CONVERSATIONAL_PREFERENCE)
    built: list[Any] = []
    from epochscope_trainer.job.methods import dpo

    class Watched(dpo.DPOTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(dpo, "DPOTrainer", Watched)
    config = {
        "batch_size": 4,
        "num_epochs": 2,
        "learning_rate": 1e-3,
        "max_length": 256,
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "method": {"type": "dpo", "beta": 0.1},
        "predictions": {"enabled": True, "sample_count": 2, "max_new_tokens": 4},
    }
    status, published = run_job(settings, objects, start_event(config, train, dir_model(tiny_model_dir)))
    assert status == JobStatus.COMPLETED, final_message(published)
    (trainer,) = built
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]  # no copy, no "ref" adapter
    progress = [e for e in published if isinstance(e, ProgressEvent)]
    assert [e.step for e in progress] == [1, 2, 3, 4]
    for point in progress:
        assert None not in (point.chosen_reward, point.rejected_reward, point.reward_margin, point.reward_accuracy)
        assert point.reward_margin == pytest.approx(point.chosen_reward - point.rejected_reward, abs=1e-5)
        assert point.rewards is None and point.reward is None
