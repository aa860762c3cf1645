"""Prometheus metrics of one writer process."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WriterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_consumed = Counter(
            "epochscope_writer_events_consumed",
            "Kafka records taken from the topics.",
            ["topic"],
            registry=self.registry,
        )
        self.rows_applied = Counter(
            "epochscope_writer_rows_applied",
            "Rows inserted (predictions, rounds, progress, warnings) and job status changes applied.",
            ["kind"],
            registry=self.registry,
        )
        self.duplicates_skipped = Counter(
            "epochscope_writer_duplicates_skipped",
            "Redelivered events already stored, and stale statuses.",
            ["kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "epochscope_writer_dead_letters",
            "Records sent to a dead-letter topic.",
            ["reason"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "epochscope_writer_batch_seconds",
            "A lane's part of a batch: from the batch's apply to that lane's database commit.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "epochscope_writer_batch_records",
            "Records per lane's part of an applied batch (one transaction).",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "epochscope_writer_consumer_lag",
            "High watermark minus committed offset, per assigned partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.assigned_partitions = Gauge(
            "epochscope_writer_assigned_partitions",
            "Partitions this writer owns now.",
            registry=self.registry,
        )
        self.database_retries = Counter(
            "epochscope_writer_database_retries",
            "Batches retried because the database was unreachable.",
            registry=self.registry,
        )
