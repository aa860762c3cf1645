"""A job's own bounds in the trainer, on the tiny model in-process with a real (local folder) object store: the
wall-clock limit fails the job saying so, and a prompt longer than the model's context less max_new_tokens is cut
(its end kept) with a `prompt_truncated` warning."""

import uuid
from pathlib import Path

from test_trainer_job_inputs import PREDICT, SMALL_JOB, final_message, run_job, store  # noqa: F401 (a fixture)
from trainer_fakes import dir_model, jsonl_bytes, put_dataset, start_event

from epochscope_runtime.dataset_rows import FileType, RowFormat
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.events import JobStatus, PredictionEvent, WarningEvent
from epochscope_trainer.settings import TrainerSettings


def prompt_rows(count: int, words: int) -> bytes:
    return jsonl_bytes([{"prompt": "word " * words + f"{i}?", "completion": str(i)} for i in range(count)])


def test_a_job_past_its_wall_clock_limit_fails_saying_so(
    store: tuple[TrainerSettings, ObjectStore],  # noqa: F811
    tiny_model_dir: Path,
) -> None:
    settings, objects = store
    settings = settings.model_copy(update={"job_max_seconds": 0.001})
    train = put_dataset(objects, prompt_rows(16, 3), FileType.JSONL, RowFormat.PROMPT_COMPLETION)
    event = start_event(SMALL_JOB, train, dir_model(tiny_model_dir), job_id=uuid.uuid4())
    status, published = run_job(settings, objects, event)
    assert status == JobStatus.FAILED
    message = final_message(published)
    assert "wall-clock limit of 0.001 s (EPOCHSCOPE_TRAINER_JOB_MAX_SECONDS); stopped at step 1" in message


def test_a_prompt_past_the_context_is_cut_with_a_warning(
    store: tuple[TrainerSettings, ObjectStore],  # noqa: F811
    tiny_model_dir: Path,
) -> None:
    settings, objects = store
    train = put_dataset(objects, prompt_rows(16, 3), FileType.JSONL, RowFormat.PROMPT_COMPLETION)
    long = put_dataset(objects, prompt_rows(4, 600), FileType.JSONL, RowFormat.PROMPT_COMPLETION)  # > 256 tokens
    config = SMALL_JOB | {"predictions": PREDICT | {"samples_dataset_id": str(long.dataset_id)}}
    event = start_event(config, train, dir_model(tiny_model_dir), job_id=uuid.uuid4(), samples=long)
    status, published = run_job(settings, objects, event)
    assert status == JobStatus.COMPLETED, final_message(published)
    assert len([e for e in published if isinstance(e, PredictionEvent)]) == 2
    (warning,) = [e for e in published if isinstance(e, WarningEvent) and e.code == "prompt_truncated"]
    assert warning.message.startswith("round 0: 2 prompt(s) lost their first tokens"), warning.message
