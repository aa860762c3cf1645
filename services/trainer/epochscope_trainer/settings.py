"""The trainer's one settings object, read from the environment (EPOCHSCOPE_*)."""

import os
import socket
import uuid
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.object_store import StoreSettings
from epochscope_runtime.secret_policy import Environment, refuse_weak_secrets
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES

KEY_ENV = "EPOCHSCOPE_TRAINER_KEY"
DISPATCH_KEY_ENV = "EPOCHSCOPE_DISPATCH_KEY"
SERVICE_KEYS = (KEY_ENV, DISPATCH_KEY_ENV)  # the service's own secrets, never passed to a job's process


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_TRAINER_", populate_by_name=True)

    work_dir: Path = Field(default=Path("trainer-work"), description="One folder per job: config, spool, outputs.")
    model_cache_dir: Path = Field(default=Path("model-cache"), description="Converted models (GGUF -> safetensors).")
    progress_every_steps: int = Field(default=1, ge=1, description="Publish a progress event every N global steps.")
    publish_queue_size: int = Field(default=10_000, ge=1, description="Events held in memory before spooling.")
    flush_timeout_s: float = Field(
        default=30.0, ge=0, description="How long the end of a job waits for its events to reach its spool."
    )
    held_events_max: int = Field(
        default=100_000,
        ge=1,
        description="Events a job holds in memory while its spool cannot be written (a full disk); past it the job"
        " takes no more events, stops and fails (EVENTS_LOST).",
    )
    cancel_check_s: float = Field(default=0.5, gt=0, description="How often the running job looks for a cancel.")
    cancel_grace_s: float = Field(
        default=5.0, gt=0, description="How long a cancelled job may take to stop before its process is killed."
    )
    prediction_text_max_bytes: int = Field(
        default=DEFAULT_TEXT_MAX_BYTES,
        ge=256,
        description="Prompt, ground truth and prediction are each cut to this many UTF-8 bytes (flagged truncated).",
    )
    job_max_seconds: float = Field(
        default=86_400.0, gt=0, description="Wall-clock limit of one job; past it, training stops and the job fails."
    )
    keep_job_dirs: bool = Field(
        default=False, description="Keep each job's folder (config, inputs, log) after the job ends, for debugging."
    )
    processes_per_job: int = Field(default=1, ge=1, description="Ranks per job (torchrun); 1 runs a plain process.")
    trainer_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        max_length=200,
        description="This trainer's id in its heartbeats; the dispatcher addresses starts to it. Unique per process.",
    )
    heartbeat_s: float = Field(
        default=2.0, ge=0, description="How often the trainer announces its capacity; 0 never (it then gets no job)."
    )
    device: str = Field(default="cpu", max_length=200, description="The device kind announced in heartbeats.")
    key: SecretStr | None = Field(
        default=None,
        description="EPOCHSCOPE_TRAINER_KEY: signs heartbeats (shared with the writers); unset, they go unsigned and"
        " the writer records none, so the trainer gets no job. Required in production.",
    )
    dispatch_key: SecretStr | None = Field(
        default=None,
        validation_alias=DISPATCH_KEY_ENV,  # the API's dispatcher signs starts with the same key
        description="EPOCHSCOPE_DISPATCH_KEY: set, the trainer runs only starts the dispatcher signed with it and"
        " dead-letters any other addressed to it, unread; unset (development only), it takes unsigned starts."
        " Required in production.",
    )
    environment: Environment = Field(
        default=Environment.PRODUCTION,
        validation_alias="EPOCHSCOPE_ENVIRONMENT",  # the one setting every service shares
        description="production refuses a weak or (at start-up) missing trainer key or dispatch key.",
    )
    log_level: str = "INFO"
    datasets: DatasetLimits = Field(
        default_factory=DatasetLimits, description="Bytes a row and a file may decode to (EPOCHSCOPE_DATASET_*)."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @model_validator(mode="after")
    def _no_weak_key(self) -> "TrainerSettings":
        dispatch_key = self.dispatch_key.get_secret_value() if self.dispatch_key else None
        refuse_weak_secrets(
            self.environment,
            {KEY_ENV: self.key.get_secret_value() if self.key else None, DISPATCH_KEY_ENV: dispatch_key},
        )
        return self

    def missing_key(self) -> str | None:
        """Why the service may not start without a key (production, heartbeats on), or None. Checked at start-up,
        not in the settings: the job's child process reads the settings too, and is given neither key."""
        if self.environment != Environment.PRODUCTION or self.heartbeat_s <= 0:
            return None
        if self.key is None:
            return f"{KEY_ENV} is required in production: the writer records only signed heartbeats"
        if self.dispatch_key is None:
            return f"{DISPATCH_KEY_ENV} is required in production: the trainer runs only signed starts"
        return None
