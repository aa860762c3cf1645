"""A round's answers as events: each prediction judged and bounded, then the round's summary."""

from epochscope_runtime.grading import Judge
from epochscope_runtime.sampler import Sample
from epochscope_schemas.events import PredictionEvent, RoundSummaryEvent, WarningEvent
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish
from epochscope_trainer.job.generation import Generation
from epochscope_trainer.job.predictions.round_runner import RoundAnswers, RoundKey
from epochscope_trainer.job.predictions.round_summary import summarize
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES, bounded_texts


class RoundPublisher:
    """Publishes each round's predictions and its summary, or a warning for a failed round (rank 0).

    Args:
        samples: the round's samples, in the order the runner answers them.
        judge: the job's graders.
        publish: hands an event to the background publisher (never blocks).
        job: the identity every event carries.
        text_max_bytes: prompt, ground truth and prediction are each cut to this many UTF-8 bytes and flagged in
            the event's `truncated` (the judge sees the whole texts).
    """

    def __init__(
        self,
        samples: list[Sample],
        judge: Judge,
        publish: Publish,
        job: JobIdentity,
        text_max_bytes: int = DEFAULT_TEXT_MAX_BYTES,
    ) -> None:
        self.samples = samples
        self.judge = judge
        self.publish = publish
        self.job = job
        self.text_max_bytes = text_max_bytes

    def answered(self, answers: RoundAnswers) -> RoundSummaryEvent:
        """Publish the round's predictions, then its summary; the summary. Prompts cut to fit the model's context are
        named in one `prompt_truncated` warning."""
        self.warn_cut_prompts(answers.key, answers.generations)
        events = [
            self.prediction(answers.key, sample, prompt, generation)
            for sample, prompt, generation in zip(self.samples, answers.prompts, answers.generations, strict=True)
        ]
        for event in events:
            self.publish(TRAINING_PREDICTIONS, event)
        summary = summarize(events, answers.key, answers.wall_ms, answers.stall_ms)
        self.publish(TRAINING_STATUS, summary)
        return summary

    def warn_cut_prompts(self, key: RoundKey, generations: list[Generation]) -> None:
        pairs = zip(self.samples, generations, strict=True)
        cut = [f"{sample.sample_id} ({g.prompt_tokens_cut})" for sample, g in pairs if g.prompt_tokens_cut]
        if cut:
            message = (
                f"round {key.index}: {len(cut)} prompt(s) lost their first tokens to fit the model's context less"
                f" max_new_tokens: {', '.join(cut)}"
            )
            warning = WarningEvent(**self.job.envelope(), code="prompt_truncated", message=message[:2000])
            self.publish(TRAINING_STATUS, warning)

    def failed(self, key: RoundKey, exc: Exception) -> None:
        message = f"round {key.index} at step {key.step}: {type(exc).__name__}: {exc}"
        self.publish(
            TRAINING_STATUS, WarningEvent(**self.job.envelope(), code="prediction_round_failed", message=message[:2000])
        )

    def prediction(self, key: RoundKey, sample: Sample, prompt: str, generation: Generation) -> PredictionEvent:
        """One judged answer as its event."""
        judgement = self.judge(prompt, generation.text, sample.references)  # as a GRPO reward grades it
        texts, truncated = bounded_texts(
            self.text_max_bytes, prompt=prompt, ground_truth=sample.ground_truth, prediction=generation.text
        )
        return PredictionEvent(
            **self.job.envelope(),
            round_index=key.index,
            epoch=key.epoch,
            step=key.step,
            sample_id=sample.sample_id,
            sample_index=sample.index,
            **texts,
            truncated=truncated,
            tokens_generated=generation.tokens,
            latency_ms=generation.latency_ms,
            valid=judgement.valid,
            validation_error=judgement.validation_error,
            scores=judgement.scores,
            grades=judgement.grades,
        )
