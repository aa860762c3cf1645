"""Generate the committed JSON Schema files from the pydantic models."""

import json
import sys
from pathlib import Path

from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import EVENT_TYPES
from epochscope_schemas.scheduling import TrainerHeartbeat

JSON_DIR = Path("schemas/json")  # relative to the repository root


def schema_documents() -> dict[str, dict]:
    """File name -> JSON Schema, for JobConfig, every event and the trainers' heartbeat."""
    documents = {"job_config.schema.json": JobConfig.model_json_schema()}
    for model in EVENT_TYPES:
        event_type = model.model_fields["type"].default
        documents[f"event.{event_type}.schema.json"] = model.model_json_schema()
    documents["event.trainer.heartbeat.schema.json"] = TrainerHeartbeat.model_json_schema()  # not a job event
    return documents


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else JSON_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, document in schema_documents().items():
        (out_dir / name).write_text(render(document))
        print(out_dir / name)


if __name__ == "__main__":
    main()
