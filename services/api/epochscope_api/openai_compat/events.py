"""A job's events in OpenAI's `fine_tuning.job.event` shape: status changes and warnings as messages, a `metrics`
event per training step (loss, learning rate) and per prediction round (each grader's pass rate). An event's id
holds its place in the job's history, so `after` pages on without a lookup and the ids never change."""

from datetime import datetime
from typing import Any

from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.data.openai_events import CREATED, FINISHED, ROUND, STARTED, STEP, WARNING, EventRow
from epochscope_api.openai_compat.objects import OpenAIJobEvent

EVENT = "ftevent-"
_FINAL_MESSAGES = {
    "completed": "The job has successfully completed",
    "cancelled": "The job was cancelled",
    "failed": "The job failed",
}


def event_id(row: EventRow) -> str:
    return EVENT + encode_cursor([row.at.isoformat(), row.kind, row.key])


def event_place(value: str) -> tuple[datetime, int, str]:
    """The place an event id stands for; BadCursor naming `after` for any other text."""
    at, kind, key = decode_cursor(
        value.removeprefix(EVENT), lambda v: datetime.fromisoformat(text(v)), INT4, text, name="after"
    )
    return at, kind, key


def _pass_rates(graders: dict[str, Any]) -> dict[str, float | None]:
    return {name: (g["passed"] / g["graded"] if g.get("graded") else None) for name, g in graders.items()}


def _round_event(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rates = _pass_rates(data.pop("graders") or {})
    shown = ", ".join(f"{name} {rate:.2f}" if rate is not None else f"{name} n/a" for name, rate in rates.items())
    message = f"Prediction round {data['round_index']} at step {data['step']}" + (f": {shown}" if shown else "")
    return message, data | {"graders": rates}


def _step_message(data: dict[str, Any]) -> str:
    loss = data.get("train_loss")
    return (
        f"Step {data['step']}/{data['total_steps']}: training loss={loss:.4f}"
        if loss is not None
        else (f"Step {data['step']}/{data['total_steps']}")
    )


def job_event(row: EventRow) -> OpenAIJobEvent:
    data = dict(row.data or {})
    level, kind = "info", "message"
    if row.kind == CREATED:
        message, data = "Created fine-tuning job", {}
    elif row.kind == STARTED:
        message, data = "Fine-tuning job started", {}
    elif row.kind == STEP:
        message, kind = _step_message(data), "metrics"
    elif row.kind == ROUND:
        (message, data), kind = _round_event(data), "metrics"
    elif row.kind == WARNING:
        message, level = f"{data['code']}: {data['message']}", "warn"
    else:
        assert row.kind == FINISHED
        status = data["status"]
        message = data.get("message") or _FINAL_MESSAGES[status]
        message = message if status != "failed" else f"{_FINAL_MESSAGES[status]}: {message}"
        level = "error" if status == "failed" else "info"
    return OpenAIJobEvent(
        id=event_id(row), created_at=int(row.at.timestamp()), level=level, message=message, type=kind, data=data or None
    )
