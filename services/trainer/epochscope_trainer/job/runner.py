"""`epochscope-train-job`: run one job in its own process (started by the trainer service).

Speaks the child side of `child_protocol`: reads the job's config and inputs from the job folder and
its identity from the environment; reads the datasets the service staged in the job folder (`input_staging`) and
hands its checkpoints to the service to upload (`checkpoint_store`): it holds no store credentials;
publishes status, progress, warning, prediction and round-summary events. The cancel file cancels the
job (it ends as cancelled); SIGTERM stops it for a trainer shutdown (no final status: the job is re-run
when a trainer picks it up again). The exit code is a `ChildExit`. Under torchrun every rank trains;
only rank 0 publishes.
"""

import argparse
import csv
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from epochscope_runtime.log_config import configure_logging
from epochscope_runtime.sampler import Sample
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import (
    DatasetObject,
    Envelope,
    JobInputs,
    JobStatus,
    JobStatusEvent,
    RoundSummaryEvent,
    WarningEvent,
)
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.checkpoint_store import CHECKPOINTS_DIR, CheckpointStore, RequestedCheckpointStore
from epochscope_trainer.child_protocol import (
    INPUTS_DIR,
    SPOOL_FILE,
    ChildExit,
    JobIdentity,
    cancel_reason,
    cancel_requested,
    child_rank,
    read_job_config,
    read_job_inputs,
)
from epochscope_trainer.input_staging import staged_input
from epochscope_trainer.job.callbacks import ProgressCallback, Publish, StopOnRequest
from epochscope_trainer.job.checkpointing import Checkpointer
from epochscope_trainer.job.inputs import InputFile, Record, read_dataset
from epochscope_trainer.job.methods import TrainingParts, method_for
from epochscope_trainer.job.model_loading import load_model_and_tokenizer, resolve_model
from epochscope_trainer.job.precision import this_machine
from epochscope_trainer.job.predictions import prediction_rounds
from epochscope_trainer.job.predictions.round_runner import AfterRound
from epochscope_trainer.job.stopping import StopOnRule, StopRule
from epochscope_trainer.job.time_limit import TimeLimit
from epochscope_trainer.publishing.spooling_publisher import EventPublisher
from epochscope_trainer.settings import TrainerSettings

log = logging.getLogger("epochscope.trainer.job")

ROWS_DIR = "rows"  # the training rows as Arrow files (inputs.InputFile.training_rows)


class JobRun:
    """One job: load data and model, train with the callbacks, report the outcome."""

    def __init__(
        self,
        config: JobConfig,
        inputs: JobInputs,
        store: CheckpointStore,
        job: JobIdentity,
        job_dir: Path,
        settings: TrainerSettings,
        publish: Publish,
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.store = store
        self.job = job
        self.job_dir = job_dir
        self.settings = settings
        self.publish = publish
        self.shutdown = threading.Event()
        self.stop_rule = StopRule(config.predictions.stop_when) if config.predictions.stop_when else None

    @property
    def cancelled(self) -> bool:
        return cancel_requested(self.job_dir)

    def stop_requested(self) -> bool:
        return self.cancelled or self.shutdown.is_set()

    def status(self, status: JobStatus, message: str | None = None, metrics: dict[str, float] | None = None) -> None:
        self.publish(
            TRAINING_STATUS,
            JobStatusEvent(**self.job.envelope(), status=status, message=message, metrics=metrics or {}),
        )

    def warn(self, code: str, message: str) -> None:
        log.warning("%s: %s", code, message)
        self.publish(TRAINING_STATUS, WarningEvent(**self.job.envelope(), code=code, message=message[:2000]))

    def run(self) -> JobStatus | None:
        """The final status published, or None when interrupted by a shutdown."""
        self.status(JobStatus.RUNNING, "loading the model and the data")
        try:
            metrics = self._train()
        except Exception as exc:  # noqa: BLE001  any failure ends the job as failed, with a short reason
            log.exception("job failed")
            self.status(JobStatus.FAILED, f"{type(exc).__name__}: {exc}"[:1000])
            return JobStatus.FAILED
        if self.shutdown.is_set() and not self.cancelled:
            return None
        if self.cancelled:
            self.status(JobStatus.CANCELLED, cancel_reason(self.job_dir), metrics)
            return JobStatus.CANCELLED
        reason = self.stop_rule.reason if self.stop_rule else None
        self.status(JobStatus.COMPLETED, reason or "training finished", metrics)
        return JobStatus.COMPLETED

    def _train(self) -> dict[str, float]:
        config = self.config
        time_limit = TimeLimit(self.settings.job_max_seconds)
        model_path = resolve_model(self.inputs.model, self.settings.model_cache_dir)  # an unusable source fails fast
        train = self._load("train", self.inputs.train)
        if not train.usable:
            raise ValueError(f"no usable rows in dataset {self.inputs.train.dataset_id} ({train.skipped} malformed)")
        method = method_for(config)
        train_rows, eval_rows = self._split(train, method.training_record)
        samples = self._samples(train)
        precision = this_machine()
        model, tokenizer = load_model_and_tokenizer(model_path, precision.torch_dtype())
        callbacks: list[Any] = [
            ProgressCallback(self.publish, self.job, config.num_epochs),
            StopOnRequest(self.stop_requested),
            time_limit,
        ]
        checkpointer = Checkpointer(
            config.predictions.checkpoints,
            self.store,
            self.job,
            self.publish,
            self.job_dir / CHECKPOINTS_DIR,
            byte_allowance=self.inputs.checkpoint_bytes_max,
        )
        if samples:
            callbacks.append(
                prediction_rounds(
                    config.predictions,
                    samples,
                    tokenizer,
                    self.publish,
                    self.job,
                    text_max_bytes=self.settings.prediction_text_max_bytes,
                    after_round=self._after_round(checkpointer),
                )
            )
            if self.stop_rule is not None:
                callbacks.append(StopOnRule(self.stop_rule))
        trainer = method.build_trainer(
            TrainingParts(
                config=config,
                model=model,
                tokenizer=tokenizer,
                train_rows=train_rows,
                eval_rows=eval_rows,
                precision=precision,
                output_dir=self.job_dir / "output",
                logging_steps=self.settings.progress_every_steps,
                callbacks=callbacks,
                publish=self.publish,
                job=self.job,
                text_max_bytes=self.settings.prediction_text_max_bytes,
            )
        )
        processes = trainer.accelerator.num_processes
        self.status(
            JobStatus.RUNNING,
            json.dumps(
                {
                    "method": config.method.type,
                    "model": self.inputs.model.id,
                    "model_path": model_path,
                    "device": precision.device,
                    "precision": precision.label,
                    "processes": processes,
                    "backend": torch.distributed.get_backend() if processes > 1 else None,
                    "train_rows": len(train_rows),
                    "eval_rows": len(eval_rows) if eval_rows else 0,
                    "skipped_rows": train.skipped,
                    "samples": len(samples),
                    "lora": config.lora is not None,
                    "predictions_mode": "background" if config.predictions.background else "inline",
                }
            ),
        )
        try:
            result = trainer.train()
            time_limit.raise_if_stopped(trainer.state.global_step)
            if trainer.is_world_process_zero() and not self.stop_requested():
                checkpointer.save_final(trainer.model, tokenizer, trainer.state.global_step, trainer.state.epoch or 0.0)
        finally:
            checkpointer.close()
        return {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}

    def _after_round(self, checkpointer: Checkpointer) -> AfterRound:
        """What a round's outcome drives: its checkpoint, and the stop rule."""

        def after(model: Any, tokenizer: Any, summary: RoundSummaryEvent, stalls_training: bool) -> None:
            checkpointer.on_round(model, tokenizer, summary, stalls_training)
            if self.stop_rule is not None:
                self.stop_rule.observe(summary)

        return after

    def _load(self, name: str, obj: DatasetObject) -> InputFile:
        """Read one input dataset the service staged; malformed rows are a warning."""
        path = staged_input(self.job_dir / INPUTS_DIR, obj, name)
        dataset = read_dataset(path, obj.file_type, self.settings.datasets)
        if dataset.skipped:
            skipped = f"skipped {dataset.skipped} malformed row(s): {dataset.skip_summary()}"
            self.warn("rows_skipped", f"{name} dataset {obj.dataset_id}: {skipped}")
        return dataset

    def _split(self, train: InputFile, record: Record) -> tuple[Any, Any | None]:
        """The training and eval rows (datasets.Dataset on disk), each a `record` of the method's."""
        config = self.config
        cache = self.job_dir / ROWS_DIR
        if self.inputs.eval is not None:
            return train.training_rows(cache, record), self._load("eval", self.inputs.eval).training_rows(cache, record)
        if config.eval_fraction is None:
            return train.training_rows(cache, record), None
        return train.split(config.eval_fraction, config.predictions.seed, cache, record)

    def _samples(self, train: InputFile) -> list[Sample]:
        """The prediction set; an unreadable or empty samples dataset is a warning and training goes on."""
        predictions = self.config.predictions
        if not predictions.enabled:
            return []
        source = train
        samples = self.inputs.samples
        if samples is not None:
            try:
                source = self._load("samples", samples)
            except (OSError, ValueError, csv.Error) as exc:  # InputError, a broken file: no predictions
                self.warn("samples_unreadable", f"cannot read the samples dataset: {exc}; training without predictions")
                return []
            if not source.usable:
                self.warn("samples_empty", f"samples dataset {samples.dataset_id} has no usable rows; no predictions")
                return []
        return source.samples(predictions.sample_count, predictions.seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="epochscope-train-job", description=__doc__)
    parser.add_argument("--job-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = TrainerSettings()
    rank = child_rank()
    configure_logging(f"trainer-job-{rank}" if rank else "trainer-job", settings.log_level)
    job = JobIdentity.from_environment()
    config = read_job_config(args.job_dir)
    inputs = read_job_inputs(args.job_dir)
    publisher = None
    if rank == 0:
        publisher = EventPublisher(
            settings.kafka,
            args.job_dir / SPOOL_FILE,
            settings.publish_queue_size,
            attempt_id=job.attempt_id,
            to_broker=False,  # the service delivers the spool: the child holds no broker credentials
            held_max=settings.held_events_max,
            on_overflow=lambda: run.shutdown.set(),  # `run` is bound by then: only its events can overflow
        )
        publisher.start()
    run = JobRun(
        config,
        inputs,
        RequestedCheckpointStore(args.job_dir),
        job,
        args.job_dir,
        settings,
        publisher.publish if publisher else _discard,
    )
    signal.signal(signal.SIGTERM, lambda _signum, _frame: run.shutdown.set())
    outcome = run.run()
    if publisher is not None:
        publisher.close(settings.flush_timeout_s)
        if publisher.held() or publisher.dropped:  # logged by the publisher; the service reports the job failed
            sys.exit(ChildExit.EVENTS_LOST)
    sys.exit(ChildExit.INTERRUPTED if outcome is None else ChildExit.FINISHED)


def _discard(topic: str, event: Envelope) -> None:
    """Ranks other than 0 publish nothing: rank 0 speaks for the job."""


if __name__ == "__main__":
    main()
