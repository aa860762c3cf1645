"""Fine-tuned model names: `ft:<catalog model>:<suffix or epochscope>:<job hex>:ckpt-<checkpoint hex>`, OpenAI's
`ft:` form with the Epochscope job and checkpoint it resolves to at the end (download the weights with
GET /v1/jobs/{job_id}/checkpoints/{checkpoint_id}/download). A job's `fine_tuned_model` names its final checkpoint."""

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointRef:
    job_id: uuid.UUID
    checkpoint_id: uuid.UUID


def model_name(base_model: str, suffix: str | None, ref: CheckpointRef) -> str:
    return f"ft:{base_model}:{suffix or 'epochscope'}:{ref.job_id.hex}:ckpt-{ref.checkpoint_id.hex}"


def resolve_model_name(name: str) -> CheckpointRef | None:
    """The job and checkpoint a name from model_name() points at; None for any other text."""
    parts = name.split(":")
    if len(parts) < 5 or parts[0] != "ft" or not parts[-1].startswith("ckpt-"):
        return None
    try:
        return CheckpointRef(uuid.UUID(parts[-2]), uuid.UUID(parts[-1].removeprefix("ckpt-")))
    except ValueError:
        return None
