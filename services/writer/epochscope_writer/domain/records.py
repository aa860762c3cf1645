"""A Kafka record as the writer's rules see it, with no Kafka client in sight."""

from typing import Protocol


class KafkaRecord(Protocol):
    """The fields of aiokafka's ConsumerRecord the writer uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
