"""The API's one settings object, read from the environment (EPOCHSCOPE_*)."""

from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_runtime.catalog import CatalogModel, demo_catalog
from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dispatch_keys import key_text, load_private_key
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.object_store import StoreSettings
from epochscope_runtime.secret_policy import Environment, refuse_weak_secrets
from epochscope_schemas.config import PredictionLimits
from epochscope_schemas.methods import GrpoLimits


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_", hide_input_in_errors=True)  # errors name no secret

    environment: Environment = Field(
        default=Environment.PRODUCTION, description="production refuses weak secrets; development allows them."
    )
    database_url: str = "postgresql://epochscope_api@127.0.0.1:5432/epochscope"
    # Users' bearer tokens: an HS256 key or an identity provider's JWKS (exactly one: a user id is one issuer's `sub`).
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 key of users' bearer tokens.")
    jwks_url: str | None = Field(default=None, description="Public keys of an identity provider (JWKS).")
    jwks_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    jwks_cache_seconds: float = Field(default=300.0, gt=0, description="How long the fetched key set is kept.")
    jwks_refetch_min_seconds: float = Field(
        default=60.0, ge=0, description="Least time between key-set fetches caused by a token with an unknown kid."
    )
    jwt_audience: str | None = Field(default=None, description="The `aud` JWKS-signed tokens must carry (required).")
    jwt_issuer: str | None = Field(default=None, description="The `iss` JWKS-signed tokens must carry (required).")
    jwt_max_lifetime_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Longest life of an HS256 token: `exp` at most this far after `iat`, and never further from now.",
    )
    token_cache_size: int = Field(
        default=10_000, ge=0, description="Verified bearer tokens remembered, so a repeat skips the check (0: none)."
    )
    token_cache_seconds: float = Field(
        default=60.0, gt=0, description="Longest a verified bearer token is remembered (never past its `exp`)."
    )
    stream_ticket_seconds: int = Field(
        default=300, ge=5, description="Life of a live-stream ticket; the stream it opened ends when it expires."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token /metrics requires; unset: /metrics is not served."
    )
    job_token_secret: SecretStr  # required: HS256 key for job tokens, shared with the writer
    dispatch_private_key: SecretStr | None = Field(
        default=None,
        description="EPOCHSCOPE_DISPATCH_PRIVATE_KEY: the dispatcher's Ed25519 private key (PEM, or its 32 raw bytes"
        " in base64), which signs each job start; trainers hold only the public key. Or EPOCHSCOPE_DISPATCH_PRIVATE_"
        "KEY_FILE. Required in production; unset (development only), starts go unsigned.",
    )
    dispatch_private_key_file: Path | None = Field(
        default=None, description="A file holding the dispatcher's private key (a mounted secret), instead."
    )
    job_token_ttl_hours: float = 72.0
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(
        default=1,
        ge=1,
        description="uvicorn worker processes, each with its own pool and outbox relay; /metrics then counts one"
        " worker per scrape, so prefer more replicas where there is a load balancer.",
    )
    public_url: str = "http://127.0.0.1:8000"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for a pooled connection; then a 503 with Retry-After."
    )
    db_statement_timeout_ms: int = Field(default=30_000, ge=100, description="Postgres statement_timeout of the API.")
    db_idle_in_transaction_timeout_ms: int = Field(
        default=60_000, ge=100, description="Postgres idle_in_transaction_session_timeout of the API's connections."
    )
    exports_per_user: int = Field(default=2, ge=1, description="Most exports one user downloads at once.")
    streams_per_user: int = Field(default=8, ge=1, description="Most live streams one user holds open at once.")
    outbox_poll_seconds: float = 1.0
    outbox_retention_hours: float = Field(
        default=168.0, gt=0, description="Published outbox rows (their job token already removed) are kept this long."
    )
    retention_predictions_days: float = Field(
        default=0, ge=0, description="Predictions of jobs finished this long ago are deleted; 0 keeps them."
    )
    retention_progress_days: float = Field(
        default=0, ge=0, description="Progress points of jobs finished this long ago are deleted; 0 keeps them."
    )
    retention_trainers_days: float = Field(
        default=7, gt=0, description="Trainers silent this long (no job dispatched to them) are forgotten."
    )
    retention_attempts_days: float = Field(
        default=90, gt=0, description="The attempts of jobs finished this long ago are deleted."
    )
    retention_every_seconds: float = Field(default=3600, gt=0, description="How often the retention pass runs.")
    # Each list has its own page limit (a request's `limit` is cut to it).
    jobs_page_max: int = Field(default=500, ge=1, description="Most jobs per page of GET /v1/jobs.")
    predictions_page_max: int = Field(default=500, ge=1, description="Most predictions per page.")
    rollouts_page_max: int = Field(default=500, ge=1, description="Most GRPO rollouts per page.")
    sample_rounds_max: int = Field(default=500, ge=1, description="Most rounds per read of one sample's history.")
    rounds_page_max: int = Field(default=10_000, ge=1, description="Most round summaries per read.")
    progress_page_max: int = Field(default=10_000, ge=1, description="Most progress points per request.")
    timeline_page_max: int = Field(default=100, ge=1, description="Most samples per page of a job's answer timeline.")
    bootstrap_resamples: int = Field(
        default=2000, ge=100, le=20_000, description="Resamples of the paired bootstrap intervals of a comparison."
    )
    bootstrap_seed: int = Field(
        default=0, ge=0, description="Seed of those resamples: a comparison always reads the same."
    )
    stream_poll_seconds: float = Field(default=5.0, gt=0, description="Live stream re-check without a NOTIFY.")
    models: list[CatalogModel] = Field(
        default_factory=demo_catalog, min_length=1, description="The model catalog (JSON in env): what jobs may name."
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest request body (uploads excepted: see upload_max_bytes)."
    )
    upload_max_bytes: int = Field(default=1 << 30, ge=1, description="Largest dataset upload, in bytes.")
    upload_report_examples: int = Field(default=20, ge=0, description="Malformed rows listed in a report.")
    datasets: DatasetLimits = Field(
        default_factory=DatasetLimits, description="Bytes a row and a file may decode to (EPOCHSCOPE_DATASET_*)."
    )
    scan_memory_bytes: int = Field(
        default=1 << 30,
        ge=64 << 20,
        description="Memory an upload's scan may take (its child process's address space, past its start); beyond,"
        " the upload is refused.",
    )
    scan_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long an upload may wait on its scan (a JSONL file is scanned while its body arrives: the"
        " time the body takes is not counted); beyond, the upload is refused.",
    )
    token_count_max_chars: int = Field(
        default=256 << 10, ge=1024, description="Characters of a prompt or completion the token counts encode."
    )
    datasets_page_max: int = Field(default=100, ge=1, description="Most datasets per page.")
    dataset_rows_page_max: int = Field(default=100, ge=1, description="Most rows per page of a dataset's rows.")
    quota_active_jobs: int = Field(default=10, ge=1, description="Most queued or running jobs per user.")
    dispatch_lease_seconds: float = Field(
        default=10.0, gt=0, description="A trainer whose last heartbeat is older loses its jobs (dispatched again)."
    )
    dispatch_start_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A job dispatched to a live trainer that has not started it by then (no running status, no"
        " heartbeat naming its attempt) is dispatched again as a new attempt.",
    )
    dispatch_max_attempts: int = Field(default=3, ge=1, description="Dispatches of one job before it fails.")
    dispatch_per_user: int = Field(default=2, ge=1, description="Most jobs of one user dispatched or running at once.")
    quota_datasets: int = Field(default=100, ge=1, description="Most datasets per user.")
    quota_dataset_bytes: int = Field(default=20 << 30, ge=1, description="Most bytes of datasets per user.")
    quota_checkpoint_bytes: int = Field(
        default=50 << 30,
        ge=0,
        description="Most bytes of checkpoints a user's jobs may keep; a job is allowed what is left when it is"
        " submitted, and its trainer keeps no checkpoint past that.",
    )
    quota_prediction_bytes: int = Field(
        default=10 << 30,
        ge=1,
        description="Most bytes of stored prediction texts per user; past it, a job with predictions is refused.",
    )
    quota_rollout_bytes: int = Field(
        default=10 << 30,
        ge=1,
        description="Most bytes of stored GRPO rollouts (prompt, completion, reward components) per user; past it,"
        " a GRPO job is refused.",
    )
    quota_writes_per_minute: int = Field(
        default=60, ge=1, description="Most write requests (POST, DELETE) per user per minute, as a token bucket."
    )
    quota_retry_after_seconds: int = Field(
        default=60, ge=1, description="Retry-After of a count quota's 429 (active jobs, datasets, bytes)."
    )
    page_max_bytes: int = Field(
        default=4 << 20, ge=1024, description="A page or a live-stream read stops adding rows past this many bytes."
    )
    job_max_rounds: int = Field(
        default=1000,
        ge=1,
        description="Most prediction rounds per job (the baseline included).",
    )
    job_max_generated_tokens: int = Field(
        default=20_000_000, ge=1, description="Most generated tokens per job (every answer at max_new_tokens)."
    )
    grader_run_max_chars: int = Field(
        default=32 << 10,
        ge=1,
        description="Characters of the answer, the prompt and each reference POST /v1/graders/run grades.",
    )
    verdict_note_max_chars: int = Field(default=2000, ge=1, description="Characters of a verdict's note.")
    verdict_correction_max_chars: int = Field(
        default=32 << 10, ge=1, description="Characters of a verdict's corrected answer."
    )
    verdicts_page_max: int = Field(default=500, ge=1, description="Most verdicts per page of a job's verdicts.")
    preference_pairs_max: int = Field(
        default=2000, ge=1, description="Most preference pairs one POST /v1/jobs/{id}/preference-pairs builds."
    )
    grader_run_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long POST /v1/graders/run waits for its grader; beyond, a 503."
    )
    estimate_price_per_hour: float = Field(default=2.5, ge=0, description="Compute price of a trainer, USD/hour.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed browser origins; none by default.")
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    limits: PredictionLimits = Field(default_factory=PredictionLimits)
    grpo_limits: GrpoLimits = Field(default_factory=GrpoLimits)

    @model_validator(mode="after")
    def _some_way_to_verify_users(self) -> "ApiSettings":
        if self.jwt_secret is None and self.jwks_url is None:
            raise ValueError("set EPOCHSCOPE_JWT_SECRET or EPOCHSCOPE_JWKS_URL: users' tokens need a key")
        if any(algorithm.upper().startswith("HS") for algorithm in self.jwks_algorithms):
            raise ValueError("jwks_algorithms: only asymmetric algorithms (a JWKS holds public keys)")
        if self.jwks_url is not None and self.jwt_secret is not None:
            raise ValueError(
                "set EPOCHSCOPE_JWT_SECRET or EPOCHSCOPE_JWKS_URL, not both: their tokens' `sub`s are one namespace"
            )
        if self.jwks_url is not None and not (self.jwt_audience and self.jwt_issuer):
            raise ValueError("EPOCHSCOPE_JWKS_URL needs EPOCHSCOPE_JWT_AUDIENCE and EPOCHSCOPE_JWT_ISSUER")
        refuse_weak_secrets(
            self.environment,
            {
                "EPOCHSCOPE_JWT_SECRET": self.jwt_secret.get_secret_value() if self.jwt_secret else None,
                "EPOCHSCOPE_JOB_TOKEN_SECRET": self.job_token_secret.get_secret_value(),
                "EPOCHSCOPE_METRICS_TOKEN": self.metrics_token.get_secret_value() if self.metrics_token else None,
                "EPOCHSCOPE_DISPATCH_PRIVATE_KEY": (
                    self.dispatch_private_key.get_secret_value() if self.dispatch_private_key else None
                ),
            },
        )
        signing_key = self.dispatch_signing_key()  # an unreadable key stops the start, in any environment
        if self.environment == Environment.PRODUCTION and signing_key is None:
            raise ValueError(
                "EPOCHSCOPE_DISPATCH_PRIVATE_KEY (or _FILE) is required in production: it signs the job starts"
                " trainers run"
            )
        if len({model.id for model in self.models}) != len(self.models):
            raise ValueError("models: two catalog entries share an id")
        return self

    def dispatch_signing_key(self) -> Ed25519PrivateKey | None:
        """The dispatcher's private key from its setting or file (ValueError when unreadable), or None."""
        value = self.dispatch_private_key.get_secret_value() if self.dispatch_private_key else None
        text = key_text(value, self.dispatch_private_key_file, "EPOCHSCOPE_DISPATCH_PRIVATE_KEY")
        return load_private_key(text) if text is not None else None

    def catalog_model(self, model_id: str) -> CatalogModel | None:
        return next((model for model in self.models if model.id == model_id), None)


@lru_cache
def load_settings() -> ApiSettings:
    """The settings from the environment, read once per process."""
    return ApiSettings()
