"""The one place that builds the writer's adapters (Kafka, Postgres) and hands them to the service layer.

Tests build the service layer from fakes instead (tests/writer_fakes.py); nothing else constructs an adapter.
"""

from dataclasses import dataclass
from datetime import timedelta

from epochscope_writer.adapters.kafka import KafkaBroker
from epochscope_writer.adapters.kafka_heartbeats import KafkaHeartbeats
from epochscope_writer.adapters.postgres import PostgresDatabase
from epochscope_writer.adapters.postgres_trainers import PostgresTrainers
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.apply import BatchApplier, JobOwners
from epochscope_writer.service_layer.consumer import Writer
from epochscope_writer.service_layer.heartbeats import HeartbeatRecorder
from epochscope_writer.service_layer.prediction_quota import PredictionQuota
from epochscope_writer.settings import WriterSettings

HEARTBEATS_RETRY_S = 2.0


@dataclass(frozen=True)
class WriterServices:
    writer: Writer  # the events' batches
    heartbeats: HeartbeatRecorder  # the trainers' capacity, beside them


def bootstrap(settings: WriterSettings, metrics: WriterMetrics) -> WriterServices:
    applier = BatchApplier(
        JobTokenVerifier(settings.job_token_secret.get_secret_value(), settings.writer_owner_cache_size),
        JobOwners(settings.writer_owner_cache_size),
        PredictionQuota(settings.quota_prediction_bytes),
    )
    s = settings
    databases = [
        PostgresDatabase(s.database_url, s.writer_db_connect_timeout_s, s.writer_db_command_timeout_s)
        for _ in range(s.writer_db_connections)
    ]
    writer = Writer(settings, metrics, applier, KafkaBroker(settings, metrics), databases)
    heartbeats = HeartbeatRecorder(
        KafkaHeartbeats(settings),
        PostgresTrainers(settings.database_url, settings.writer_db_connect_timeout_s),
        settings.trainer_keys(),
        timedelta(seconds=settings.trainer_heartbeat_max_age_s),
        HEARTBEATS_RETRY_S,
    )
    return WriterServices(writer, heartbeats)
