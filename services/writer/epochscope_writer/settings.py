"""The writer's one settings object, read from the environment (EPOCHSCOPE_*)."""

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_runtime.dispatch_keys import key_text, load_public_keys
from epochscope_runtime.heartbeat_signing import AcceptedTrainerKeys
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.secret_policy import Environment, refuse_weak_secrets
from epochscope_schemas.topics import WRITERS_GROUP


class WriterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_", hide_input_in_errors=True)  # errors name no secret

    environment: Environment = Field(
        default=Environment.PRODUCTION, description="production refuses weak secrets; development allows them."
    )
    database_url: str = "postgresql://epochscope_writer@127.0.0.1:5432/epochscope"
    job_token_secret: SecretStr  # required: HS256 key the API signs job tokens with
    accepted_trainer_keys: str | None = Field(
        default=None,
        description="EPOCHSCOPE_ACCEPTED_TRAINER_KEYS: the trainers' Ed25519 identity public keys this writer accepts"
        " heartbeats from (base64 raw keys or PEM blocks, separated by commas, spaces or lines; `#` starts a comment),"
        " one per trainer (or per group of replicas sharing a key). Unset (development only), every heartbeat is"
        " dead-lettered and no trainer gets a job. Required in production.",
    )
    accepted_trainer_keys_file: Path | None = Field(
        default=None, description="A file holding them instead, like an authorized_keys file: one key a line."
    )
    trainer_heartbeat_max_age_s: float = Field(
        default=30.0, gt=0, description="A heartbeat further than this from the writer's clock is refused (stale)."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    writer_group_id: str = Field(
        default=WRITERS_GROUP, description="Kafka consumer group; a second group replays the topics independently."
    )
    writer_batch_size: int = Field(
        default=4000, ge=1, description="Most events fetched and applied as one batch (a transaction per lane)."
    )
    writer_linger_ms: int = Field(default=50, ge=0, description="How long to wait for a batch to fill.")
    writer_db_connections: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Database connections, each applying its lane of a batch in a transaction of its own, at once: a"
        " partition's records always go to the same lane (its number modulo this), so their order is kept.",
    )
    writer_partition_fetch_bytes: int = Field(
        default=4 << 20, ge=1 << 16, description="Most bytes one fetch takes from a partition: a few batches' worth."
    )
    writer_health_host: str = "0.0.0.0"
    writer_health_port: int | None = Field(default=None, description="Serve /healthz, /readyz, /metrics; off if unset.")
    writer_session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="A replica silent this long (crashed) loses its partitions to the others."
    )
    writer_heartbeat_interval_ms: int = Field(default=3000, ge=100)
    writer_db_connect_timeout_s: float = 5.0
    writer_db_command_timeout_s: float = 30.0
    writer_retry_initial_s: float = 0.2
    writer_retry_max_s: float = 10.0
    writer_owner_cache_size: int = 10_000
    quota_prediction_bytes: int = Field(
        default=10 << 30,
        ge=1,
        description="Most bytes of stored prediction texts per user (the API's setting of the same name): a batch"
        " of a user's predictions that would pass it is not stored but dead-lettered (`predictions_quota`).",
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _no_weak_secrets(self) -> "WriterSettings":
        refuse_weak_secrets(self.environment, {"EPOCHSCOPE_JOB_TOKEN_SECRET": self.job_token_secret.get_secret_value()})
        accepted = self.trainer_keys()  # an unreadable key stops the start
        if self.environment == Environment.PRODUCTION and not len(accepted):
            raise ValueError(
                "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS (or _FILE) is required in production: the trainers' identity keys"
            )
        return self

    def trainer_keys(self) -> AcceptedTrainerKeys:
        """The trainers' identity public keys from the setting or its file (ValueError when unreadable); none when
        unset."""
        text = key_text(self.accepted_trainer_keys, self.accepted_trainer_keys_file, "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS")
        if text is None:
            return AcceptedTrainerKeys([])
        lines = (line.split("#", 1)[0] for line in text.splitlines())
        return AcceptedTrainerKeys(load_public_keys("\n".join(lines), "trainer identity public key"))
