"""Kafka topic names and consumer groups. Every message is keyed by its job id."""

JOBS_START = "jobs.start"
TRAINING_PREDICTIONS = "training.predictions"
TRAINING_STATUS = "training.status"

TRAINERS_GROUP = "trainers"
WRITERS_GROUP = "writers"

ALL_TOPICS = (JOBS_START, TRAINING_PREDICTIONS, TRAINING_STATUS)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
