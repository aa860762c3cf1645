"""The trainer's one settings object, read from the environment (EPOCHSCOPE_*)."""

import os
import socket
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dispatch_keys import key_text, load_public_keys
from epochscope_runtime.dispatch_keys import load_private_key as load_identity_key
from epochscope_runtime.heartbeat_signing import bound_trainer_id
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.object_store import StoreSettings
from epochscope_runtime.secret_policy import Environment
from epochscope_runtime.token_sealing import load_private_key
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES

IDENTITY_KEY_ENV = "EPOCHSCOPE_TRAINER_IDENTITY_KEY"
SEALING_KEY_ENV = "EPOCHSCOPE_TRAINER_SEALING_KEY"
DISPATCH_PUBLIC_KEYS_ENV = "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS"
# The service's own secrets, never passed to a job's process (the dispatcher's private key is the API's alone: withheld
# too, should a deployment give every service one environment), nor where to read the identity key from.
SERVICE_KEYS = (IDENTITY_KEY_ENV, f"{IDENTITY_KEY_ENV}_FILE", SEALING_KEY_ENV, "EPOCHSCOPE_DISPATCH_PRIVATE_KEY")


def _store_configured() -> bool:
    """Whether the environment names an object store (the service's does; a job's child's never does)."""
    return any(os.environ.get(name) for name in ("EPOCHSCOPE_STORE_LOCAL_DIR", "EPOCHSCOPE_STORE_BUCKET"))


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EPOCHSCOPE_TRAINER_",
        populate_by_name=True,
        hide_input_in_errors=True,  # errors name no secret
    )

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
    instance: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        min_length=1,
        max_length=160,
        description="This process's name, unique per process: its trainer id (in its heartbeats, and the address of"
        " its starts) is its identity key's fingerprint, a dot, and this (`trainer_id`).",
    )
    heartbeat_s: float = Field(
        default=2.0, ge=0, description="How often the trainer announces its capacity; 0 never (it then gets no job)."
    )
    device: str = Field(default="cpu", max_length=200, description="The device kind announced in heartbeats.")
    identity_key: SecretStr | None = Field(
        default=None,
        description="EPOCHSCOPE_TRAINER_IDENTITY_KEY: this trainer's own Ed25519 identity private key (base64 of its 32"
        " raw bytes, or a PEM block), never logged nor given to a job's process. It signs the heartbeats, and its"
        " public key's fingerprint begins the trainer id; the writers record a heartbeat only when they accept the"
        " public key (EPOCHSCOPE_ACCEPTED_TRAINER_KEYS). Unset, heartbeats go unsigned and the writer records none,"
        " so the trainer gets no job. Required in production.",
    )
    identity_key_file: Path | None = Field(
        default=None,
        description="A file holding the identity private key instead (a mounted secret; a job's process runs as the"
        " same user and could read it, where the variable is withheld from it).",
    )
    dispatch_public_keys: str | None = Field(
        default=None,
        validation_alias=DISPATCH_PUBLIC_KEYS_ENV,  # the API's dispatcher signs starts with the private half
        description="EPOCHSCOPE_DISPATCH_PUBLIC_KEYS: the dispatcher's Ed25519 public key(s) (PEM or base64 raw keys,"
        " comma-separated: more than one while a key is rotated). Set, the trainer runs only starts one of them"
        " verifies, with the job token sealed for it, and dead-letters any other addressed to it, unread; unset"
        " (development only), it takes unsigned starts. Required in production.",
    )
    dispatch_public_keys_file: Path | None = Field(
        default=None,
        validation_alias="EPOCHSCOPE_DISPATCH_PUBLIC_KEYS_FILE",
        description="A file holding the dispatcher's public key(s), instead.",
    )
    sealing_key: SecretStr | None = Field(
        default=None,
        description="EPOCHSCOPE_TRAINER_SEALING_KEY: this trainer's X25519 private key (base64 of 32 raw bytes), whose"
        " public half its heartbeats publish and to which the dispatcher seals its starts' job tokens. Unset (the"
        " default, and the advice): a fresh key is made each time the service starts, held in memory only.",
    )
    environment: Environment = Field(
        default=Environment.PRODUCTION,
        validation_alias="EPOCHSCOPE_ENVIRONMENT",  # the one setting every service shares
        description="production refuses (at start-up) a missing identity key or dispatch public key.",
    )
    log_level: str = "INFO"
    datasets: DatasetLimits = Field(
        default_factory=DatasetLimits, description="Bytes a row and a file may decode to (EPOCHSCOPE_DATASET_*)."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings | None = Field(
        default_factory=lambda: StoreSettings() if _store_configured() else None,
        description="The object store (EPOCHSCOPE_STORE_*): the service's alone; a job's process gets none of it.",
    )

    @model_validator(mode="after")
    def _readable_keys(self) -> "TrainerSettings":
        self.start_verifying_keys()  # an unreadable key stops the start
        self.sealing_key_pair()
        self.identity()
        return self

    def identity(self) -> Ed25519PrivateKey | None:
        """This trainer's identity private key from the setting or its file (ValueError when unreadable), or None."""
        value = self.identity_key.get_secret_value() if self.identity_key else None
        text = key_text(value, self.identity_key_file, IDENTITY_KEY_ENV)
        return load_identity_key(text, IDENTITY_KEY_ENV) if text is not None else None

    def trainer_id(self) -> str:
        """This trainer's id: bound to its identity key (`heartbeat_signing`), or the bare instance without one."""
        identity = self.identity()
        return bound_trainer_id(identity, self.instance) if identity else self.instance

    def start_verifying_keys(self) -> list[Ed25519PublicKey] | None:
        """The dispatcher's public keys from the setting or its file (ValueError when unreadable), or None."""
        text = key_text(self.dispatch_public_keys, self.dispatch_public_keys_file, DISPATCH_PUBLIC_KEYS_ENV)
        return load_public_keys(text) if text is not None else None

    def sealing_key_pair(self) -> X25519PrivateKey | None:
        """This trainer's configured X25519 private key (ValueError when unreadable), or None: make one."""
        if self.sealing_key is None:
            return None
        try:
            return load_private_key(self.sealing_key.get_secret_value())
        except ValueError:
            raise ValueError(f"{SEALING_KEY_ENV} is not an X25519 private key (32 raw bytes in base64)") from None

    def missing_key(self) -> str | None:
        """Why the service may not start without a key (production, heartbeats on), or None. Checked at start-up,
        not in the settings: the job's child process reads the settings too, and is given neither key."""
        if self.environment != Environment.PRODUCTION or self.heartbeat_s <= 0:
            return None
        if self.identity_key is None and self.identity_key_file is None:
            return f"{IDENTITY_KEY_ENV} (or _FILE) is required in production: the writers record only signed beats"
        if self.dispatch_public_keys is None and self.dispatch_public_keys_file is None:
            return f"{DISPATCH_PUBLIC_KEYS_ENV} is required in production: the trainer runs only signed starts"
        return None
