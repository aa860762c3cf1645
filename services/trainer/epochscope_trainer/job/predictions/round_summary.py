"""A round's summary: computed here, once, from its predictions; everything else reads the stored summary."""

from epochscope_runtime.grading import summarize_grades
from epochscope_schemas.events import PredictionEvent, RoundSummaryEvent
from epochscope_trainer.job.predictions.round_runner import RoundKey


def summarize(
    events: list[PredictionEvent], key: RoundKey, wall_ms: float, stall_ms: float | None
) -> RoundSummaryEvent:
    """Counts and means of one round. An inline round (`stall_ms` None) stalls training for its wall time; a
    background round only for the weight snapshot."""
    validated = [e for e in events if e.valid is not None]
    scored = [e.scores for e in events if e.scores is not None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    first = events[0]
    return RoundSummaryEvent(
        job_id=first.job_id,
        job_token=first.job_token,
        attempt_id=first.attempt_id,
        round_index=key.index,
        epoch=key.epoch,
        step=key.step,
        trigger=key.trigger,
        predictions=len(events),
        validated=len(validated),
        valid=sum(1 for e in validated if e.valid),
        scored=len(scored),
        mean_exact_match=mean([s.exact_match for s in scored]),
        mean_f1=mean([s.f1 for s in scored]),
        mean_rouge_l=mean([s.rouge_l for s in scored]),
        graders=summarize_grades([e.grades for e in events]),
        tokens_generated=sum(e.tokens_generated for e in events),
        wall_ms=wall_ms,
        stall_ms=wall_ms if stall_ms is None else stall_ms,
    )
