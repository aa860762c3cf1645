"""Which trainers' heartbeats to believe: signed with an accepted identity key that their trainer id is bound to,
recent, the newest per trainer.

Heartbeats carry no job and no token, only a trainer's id, device and free slots, so none of the job rules apply.
An unsigned, forged or stale one, one signed with a key the writer does not accept or in the name of another key's
trainer, or one that is not a heartbeat at all, is refused with the reason and claims no capacity. The newest beat
per trainer wins (by `occurred_at`, which the signature covers and the age check bounds).
"""

from datetime import datetime, timedelta

from pydantic import ValidationError

from epochscope_runtime.heartbeat_signing import AcceptedTrainerKeys, RefusalKind, age_refusal
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_writer.domain.dead_letters import DeadLetter, DeadLetterReason
from epochscope_writer.domain.records import KafkaRecord

REASONS = {kind: DeadLetterReason(kind.value) for kind in RefusalKind}


def verified_newest(
    records: list[KafkaRecord], accepted: AcceptedTrainerKeys, max_age: timedelta, now: datetime
) -> tuple[list[TrainerHeartbeat], list[DeadLetter]]:
    """The newest verified heartbeat per trainer among `records`, and a dead letter for each one refused."""
    beats: dict[str, TrainerHeartbeat] = {}
    refused: list[DeadLetter] = []
    for record in records:
        try:
            beat = TrainerHeartbeat.model_validate_json(record.value or b"")
        except ValidationError as exc:
            refused.append(
                DeadLetter.for_record(record, DeadLetterReason.SCHEMA_INVALID, f"{exc.error_count()} error(s)")
            )
            continue
        if refusal := accepted.refusal(beat):
            refused.append(DeadLetter.for_record(record, REASONS[refusal.kind], refusal.detail))
            continue
        if reason := age_refusal(beat, now, max_age):
            refused.append(DeadLetter.for_record(record, DeadLetterReason.STALE_HEARTBEAT, reason))
            continue
        if beat.trainer_id not in beats or beats[beat.trainer_id].occurred_at < beat.occurred_at:
            beats[beat.trainer_id] = beat
    return list(beats.values()), refused
