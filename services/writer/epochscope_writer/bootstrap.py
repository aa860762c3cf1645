"""The one place that builds the writer's adapters (Kafka, Postgres) and hands them to the service layer.

Tests build a Writer from fakes instead (tests/writer_fakes.py); nothing else constructs an adapter.
"""

from epochscope_writer.adapters.kafka import KafkaBroker
from epochscope_writer.adapters.postgres import PostgresDatabase
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.apply import BatchApplier, JobOwners
from epochscope_writer.service_layer.consumer import Writer
from epochscope_writer.settings import WriterSettings


def bootstrap(settings: WriterSettings, metrics: WriterMetrics) -> Writer:
    applier = BatchApplier(
        JobTokenVerifier(settings.job_token_secret.get_secret_value(), settings.writer_owner_cache_size),
        JobOwners(settings.writer_owner_cache_size),
    )
    database = PostgresDatabase(
        settings.database_url, settings.writer_db_connect_timeout_s, settings.writer_db_command_timeout_s
    )
    return Writer(settings, metrics, applier, KafkaBroker(settings, metrics), database)
