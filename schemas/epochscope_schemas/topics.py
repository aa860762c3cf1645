"""Kafka topic names and consumer groups. Every message is keyed by its job id."""

JOB_COMMANDS = "jobs.commands"  # the API's commands to the trainers: job.start and job.cancel
TRAINING_PREDICTIONS = "training.predictions"
TRAINING_STATUS = "training.status"
TRAINER_HEARTBEATS = "trainers.heartbeats"  # each trainer's capacity, every few seconds (key: trainer id)

TRAINERS_GROUP = "trainers"
WRITERS_GROUP = "writers"
HEARTBEATS_GROUP = "writers-heartbeats"

ALL_TOPICS = (JOB_COMMANDS, TRAINING_PREDICTIONS, TRAINING_STATUS, TRAINER_HEARTBEATS)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
