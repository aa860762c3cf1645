"""Trainer heartbeats are signed with the trainers' key, so only a trainer can claim capacity.

A heartbeat decides where jobs (and their job tokens) go: a forged one could draw jobs to a trainer that is not
one, or keep a dead trainer's lease alive. Each trainer signs its heartbeat with EPOCHSCOPE_TRAINER_KEY, a
secret it shares with the writers: HMAC-SHA256 over the canonical payload (every field but the signature, as
compact JSON with sorted keys), which includes `occurred_at` and `event_id`. The writer recomputes it and refuses
a heartbeat whose signature is missing or wrong, or whose `occurred_at` is further than its max age from the
writer's clock (a replay, or a clock too far off to lease by).
"""

import hashlib
import hmac
import json
from datetime import datetime, timedelta

from epochscope_schemas.scheduling import TrainerHeartbeat


def _canonical(beat: TrainerHeartbeat) -> bytes:
    fields = beat.model_dump(mode="json", exclude={"signature"})
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def heartbeat_signature(beat: TrainerHeartbeat, key: str) -> str:
    """The heartbeat's signature under the trainers' key (hex)."""
    return hmac.new(key.encode(), _canonical(beat), hashlib.sha256).hexdigest()


def signed_heartbeat(beat: TrainerHeartbeat, key: str) -> TrainerHeartbeat:
    return beat.model_copy(update={"signature": heartbeat_signature(beat, key)})


def signature_refusal(beat: TrainerHeartbeat, key: str | None) -> str | None:
    """Why the heartbeat's signature does not verify under `key` (none, wrong, or no key to check), or None."""
    if not key:
        return "the writer has no EPOCHSCOPE_TRAINER_KEY to verify heartbeats with"
    if not beat.signature:
        return f"unsigned heartbeat from trainer {beat.trainer_id!r}"
    if not hmac.compare_digest(heartbeat_signature(beat, key), beat.signature):
        return f"heartbeat from trainer {beat.trainer_id!r} with a wrong signature"
    return None


def age_refusal(beat: TrainerHeartbeat, now: datetime, max_age: timedelta) -> str | None:
    """Why the heartbeat is too far from `now`, either way (a replay, or a clock too far off to lease by), or None."""
    skew = abs((now - beat.occurred_at).total_seconds())
    if skew > max_age.total_seconds():
        return f"heartbeat from trainer {beat.trainer_id!r} is {skew:.0f}s off the writer's clock (max {max_age})"
    return None
