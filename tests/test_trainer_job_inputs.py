"""The job child's inputs: datasets from a real (local folder) object store, checked against the start event,
in JSONL, CSV and Parquet; the model from its catalog source. Jobs run in-process on the tiny model, no broker."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from trainer_fakes import chat_rows, dir_model, jsonl_bytes, local_store, put_dataset, start_event

from epochscope_runtime.dataset_rows import FileType, RowFormat
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.events import (
    Envelope,
    JobStatus,
    JobStatusEvent,
    ModelSource,
    PredictionEvent,
    WarningEvent,
)
from epochscope_trainer.checkpoint_store import CHECKPOINTS_DIR, DirectCheckpointStore
from epochscope_trainer.child_protocol import INPUTS_DIR, JobIdentity
from epochscope_trainer.input_staging import InputError, fetch, stage_inputs
from epochscope_trainer.job.model_loading import ModelSourceError, resolve_model
from epochscope_trainer.job.runner import JobRun
from epochscope_trainer.settings import TrainerSettings

SMALL_JOB = {"num_epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_length": 32}
PREDICT = {"enabled": True, "sample_count": 2, "max_new_tokens": 2, "baseline_round": False}


@pytest.fixture
def store(tmp_path: Path) -> tuple[TrainerSettings, ObjectStore]:
    store_settings, store = local_store(tmp_path / "store")
    return TrainerSettings(work_dir=tmp_path / "work", model_cache_dir=tmp_path / "cache", store=store_settings), store


def run_job(settings: TrainerSettings, store: ObjectStore, event: Any) -> tuple[JobStatus | None, list[Envelope]]:
    published: list[Envelope] = []
    job_dir = settings.work_dir / str(event.job_id)
    job_dir.mkdir(parents=True)
    stage_inputs(store, event.inputs, job_dir / INPUTS_DIR)  # as the trainer service does before the child starts
    run = JobRun(
        event.config,
        event.inputs,
        DirectCheckpointStore(store, event.job_id, job_dir / CHECKPOINTS_DIR),
        JobIdentity(event.job_id, "token-1"),
        job_dir,
        settings,
        lambda _topic, e: published.append(e),
    )
    return run.run(), published


def final_message(published: list[Envelope]) -> str:
    (final,) = [e for e in published if isinstance(e, JobStatusEvent) and e.status.is_final]
    return final.message or ""


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["prompt", "completion"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def parquet_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def test_a_checksum_mismatch_fails_the_job_with_a_clear_reason(
    store: tuple[TrainerSettings, ObjectStore], tiny_model_dir: Path
) -> None:
    settings, objects = store
    train = put_dataset(objects, jsonl_bytes(chat_rows(8)))
    tampered = train.model_copy(update={"sha256": "0" * 64})
    status, published = run_job(settings, objects, start_event(SMALL_JOB, tampered, dir_model(tiny_model_dir)))
    assert status == JobStatus.FAILED
    message = final_message(published)
    assert message.startswith("InputError: train dataset") and f"SHA-256 {train.sha256}, not {'0' * 64}" in message
    kept = [p.name for p in (settings.work_dir / str(published[0].job_id) / "inputs").iterdir()]
    assert kept == ["train.error"]  # the staging's reason, and nothing half-checked


def test_a_size_mismatch_and_a_missing_object_are_input_errors(
    store: tuple[TrainerSettings, ObjectStore], tmp_path: Path
) -> None:
    _, objects = store
    train = put_dataset(objects, b'{"text": "hello"}\n')
    with pytest.raises(InputError, match="has 18 bytes, not 19"):
        fetch(objects, train.model_copy(update={"bytes": 19}), tmp_path / "in", "train")
    with pytest.raises(InputError, match="is not in the store"):
        fetch(objects, train.model_copy(update={"key": "datasets/none.jsonl"}), tmp_path / "in", "train")
    assert fetch(objects, train, tmp_path / "in", "train").read_bytes() == b'{"text": "hello"}\n'


def test_an_unknown_source_kind_fails_the_job_clearly(store: tuple[TrainerSettings, ObjectStore]) -> None:
    settings, objects = store
    train = put_dataset(objects, jsonl_bytes(chat_rows(8)))
    model = ModelSource(id="remote", source="s3:bucket/model")
    status, published = run_job(settings, objects, start_event(SMALL_JOB, train, model))
    assert status == JobStatus.FAILED
    assert final_message(published) == (
        "ModelSourceError: model 'remote': unknown source kind 's3' in 's3:bucket/model' "
        "(expected bundled:, hf: or dir:)"
    )


def test_model_sources_resolve_to_local_folders_only(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    assert resolve_model(dir_model(tiny_model_dir), tmp_path) == str(tiny_model_dir)
    with pytest.raises(ModelSourceError, match="the folder '/no/such/model' is not on this trainer"):
        resolve_model(ModelSource(id="gone", source="dir:/no/such/model"), tmp_path)
    with pytest.raises(ModelSourceError, match="no bundled model named 'other'"):
        resolve_model(ModelSource(id="other", source="bundled:other"), tmp_path)
    hub = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    with pytest.raises(ModelSourceError, match="org/tiny is not in this trainer's Hugging Face cache"):
        resolve_model(ModelSource(id="hf-tiny", source="hf:org/tiny"), tmp_path)
    commit = "a" * 40  # the cache's layout: refs/main names the snapshot folder
    (hub / "models--org--tiny" / "refs").mkdir(parents=True)
    (hub / "models--org--tiny" / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_model_dir, hub / "models--org--tiny" / "snapshots" / commit)
    resolved = resolve_model(ModelSource(id="hf-tiny", source="hf:org/tiny"), tmp_path)
    assert Path(resolved) == hub / "models--org--tiny" / "snapshots" / commit


def test_a_jsonl_job_warns_about_malformed_rows_and_an_unreadable_samples_object(
    store: tuple[TrainerSettings, ObjectStore], tiny_model_dir: Path
) -> None:
    settings, objects = store
    train = put_dataset(objects, jsonl_bytes([*chat_rows(8), "{not json", {"text": "a text row"}]))
    samples = put_dataset(objects, jsonl_bytes(chat_rows(3))).model_copy(update={"key": "datasets/deleted.jsonl"})
    config = SMALL_JOB | {"predictions": PREDICT | {"samples_dataset_id": str(samples.dataset_id)}}
    event = start_event(config, train, dir_model(tiny_model_dir), samples=samples)
    status, published = run_job(settings, objects, event)
    assert status == JobStatus.COMPLETED, final_message(published)
    warnings = {e.code: e.message for e in published if isinstance(e, WarningEvent)}
    assert set(warnings) == {"rows_skipped", "samples_unreadable"}
    assert warnings["rows_skipped"] == (
        f"train dataset {train.dataset_id}: skipped 2 malformed row(s): 1 not JSON, 1 a text row in a chat dataset"
    )
    assert "datasets/deleted.jsonl is not in the store" in warnings["samples_unreadable"]
    assert not [e for e in published if isinstance(e, PredictionEvent)]  # trained without predictions


@pytest.mark.parametrize("file_type", [FileType.CSV, FileType.PARQUET])
def test_csv_and_parquet_datasets_train_and_predict(
    store: tuple[TrainerSettings, ObjectStore], tiny_model_dir: Path, file_type: FileType
) -> None:
    settings, objects = store
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)} for i in range(8)]
    data = csv_bytes(rows) if file_type == FileType.CSV else parquet_bytes(rows)
    train = put_dataset(objects, data, file_type, RowFormat.PROMPT_COMPLETION)
    evaluation = put_dataset(objects, data, file_type, RowFormat.PROMPT_COMPLETION)
    config = SMALL_JOB | {"eval_dataset_id": str(evaluation.dataset_id), "predictions": PREDICT}
    event = start_event(config, train, dir_model(tiny_model_dir), job_id=uuid.uuid4(), eval=evaluation)
    status, published = run_job(settings, objects, event)
    assert status == JobStatus.COMPLETED, final_message(published)
    predictions = [e for e in published if isinstance(e, PredictionEvent)]
    assert len(predictions) == 2 and all(p.prompt.startswith("What is") for p in predictions)
    assert {p.ground_truth for p in predictions} <= {r["completion"] for r in rows}
    resolved = [json.loads(e.message) for e in published if isinstance(e, JobStatusEvent) and "{" in (e.message or "")]
    assert [(r["model"], r["train_rows"], r["eval_rows"], r["skipped_rows"]) for r in resolved] == [("tiny", 8, 8, 0)]
    job_inputs = settings.work_dir / str(event.job_id) / "inputs"
    assert sorted(p.name for p in job_inputs.iterdir()) == sorted([f"train.{file_type}", f"eval.{file_type}"])


BENCH = Path(__file__).resolve().parent.parent / "bench"  # memory.py: a process's RSS and peak
READ_AND_MEASURE = """
import json, os, sys
from pathlib import Path
from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import FileType
from epochscope_trainer.job.inputs import read_dataset
from memory import memory_kib, reset_peak  # bench/memory.py, on this process's PYTHONPATH

pid = os.getpid()
before = memory_kib(pid) * 1024
reset_peak(pid)  # the peak (VmHWM) starts again from here
dataset = read_dataset(Path(sys.argv[1]), FileType.JSONL, DatasetLimits())
samples = dataset.samples(4, 0)
grown = memory_kib(pid, "VmHWM") * 1024 - before
print(json.dumps({"usable": dataset.usable, "samples": [s.sample_id for s in samples], "grown": grown}))
"""


def test_a_dataset_is_counted_and_sampled_without_holding_its_rows(tmp_path: Path) -> None:
    """100,000 rows (about 20 MB of JSONL, several times that as Python objects) never all in memory at once."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl_bytes(chat_rows(100_000)))
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(path)],
        env={**os.environ, "PYTHONPATH": str(BENCH)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["usable"] == 100_000
    assert len(result["samples"]) == 4
    assert result["grown"] < 16 << 20, result
