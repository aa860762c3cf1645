"""A job under torchrun with 2 CPU processes (gloo): prompts split across ranks, only rank 0 publishes."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from trainer_fakes import chat_rows, dir_model, jsonl_bytes, local_store, put_dataset, start_event

from epochscope.broker import TansuBroker, ensure_topics
from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.events import JobStatus, JobStatusEvent, PredictionEvent, RoundSummaryEvent, parse_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_trainer.child_protocol import INPUTS_DIR, prepare_job_dir
from epochscope_trainer.input_staging import stage_inputs
from epochscope_trainer.service.spool_delivery import SpoolDelivery

pytestmark = pytest.mark.stack


async def read_all(bootstrap: str, topic: str, job_id: str) -> list[object]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        events: list[object] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and events:
                break
            events += [parse_event(r.value) for records in batch.values() for r in records if r.key == job_id.encode()]
        return events
    finally:
        await consumer.stop()


async def test_two_gloo_ranks_split_the_prompts_and_rank_zero_publishes_once(tiny_model_dir: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="epochscope-ddp-"))
    broker = TansuBroker(root / "broker.log")
    broker.start()
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=1)
        _, store = local_store(root / "store")
        train = put_dataset(store, jsonl_bytes(chat_rows(16)))
        config = {
            "num_epochs": 2,
            "batch_size": 2,
            "max_length": 32,
            "predictions": {"enabled": True, "sample_count": 5, "max_new_tokens": 4},
        }
        event = start_event(config, train, dir_model(tiny_model_dir))
        job_id = str(event.job_id)
        job_dir = prepare_job_dir(root, event)  # both ranks read the dataset from this one folder
        stage_inputs(store, event.inputs, job_dir / INPUTS_DIR)  # as the trainer service does: the child has no store
        env = {
            **os.environ,
            "JOB_ID": job_id,
            "JOB_USER_ID": "ddp-user",
            "JOB_TOKEN": "not-checked-here",
            "OMP_NUM_THREADS": "1",
        }
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "epochscope_trainer.job.runner",
            "--job-dir",
            str(job_dir),
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # The child holds no broker credentials: its events are in its spool, which the trainer service delivers.
        exited = asyncio.Event()
        exited.set()
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await SpoolDelivery(kafka, queue_size=1000, stopping=asyncio.Event())(job_dir, exited)
        predictions = await read_all(broker.bootstrap_servers, TRAINING_PREDICTIONS, job_id)
        statuses = await read_all(broker.bootstrap_servers, TRAINING_STATUS, job_id)
    finally:
        broker.stop()
    assert all(isinstance(p, PredictionEvent) for p in predictions)
    keys = [(p.step, p.sample_id) for p in predictions]
    assert len(keys) == 5 * 3 and len(set(keys)) == 15  # baseline + 2 epochs, 5 samples, each once
    rounds = [e for e in statuses if isinstance(e, RoundSummaryEvent)]
    assert [r.predictions for r in rounds] == [5, 5, 5]
    # Each rank generated its contiguous share (3 and 2 of the 5) as one batch, each with its own wall time; one
    # rank generating them all would give the round a single batch, a single latency.
    for step in sorted({p.step for p in predictions}):
        in_round = sorted((p for p in predictions if p.step == step), key=lambda p: p.sample_index)
        latencies = [p.latency_ms for p in in_round]
        assert len(set(latencies[:3])) == 1 and len(set(latencies[3:])) == 1, latencies
        assert latencies[0] != latencies[3], latencies
    finals = [e.status for e in statuses if isinstance(e, JobStatusEvent) and e.status.is_final]
    assert finals == [JobStatus.COMPLETED]
    resolved = [json.loads(e.message) for e in statuses if isinstance(e, JobStatusEvent) and "{" in (e.message or "")]
    assert [(r["processes"], r["backend"]) for r in resolved] == [(2, "gloo")]
    assert {e.job_token for e in [*predictions, *statuses]} == {"not-checked-here"}  # rank 0 had the job's identity
    assert [p.name for p in (job_dir / "inputs").iterdir()] == ["train.jsonl"]  # no partial download left behind
