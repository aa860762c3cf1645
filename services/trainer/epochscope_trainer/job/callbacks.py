"""TRL/transformers callbacks: prediction rounds, progress events, and stopping on cancel."""

import copy
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from epochscope_runtime.sampler import Sample
from epochscope_schemas.config import PredictionsConfig, SampleFrequency
from epochscope_schemas.events import Envelope, PredictionEvent, ProgressEvent, RoundSummaryEvent, WarningEvent
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_trainer.job.generation import Generation, GenerationSettings, generate_across_ranks
from epochscope_trainer.job.graders import Grading, summarize_grades
from epochscope_trainer.job.prompts import render_prompt
from epochscope_trainer.job.quality import OutputValidator, score
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES, bounded_texts

log = logging.getLogger("epochscope.trainer.callbacks")

Publish = Callable[[str, Envelope], None]
# (model, tokenizer, summary, stalls_training): what a round's outcome drives (checkpoints, stop_when)
AfterRound = Callable[[Any, Any, RoundSummaryEvent, bool], None]


@dataclass(frozen=True)
class JobIdentity:
    """What every event of the job carries."""

    job_id: Any
    job_token: str

    def envelope(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_token": self.job_token}


class PredictionsCallback(TrainerCallback):
    """Ask the model about a fixed set of samples at every epoch end, evaluation or N steps
    (and once before training, unless `baseline_round` is off).

    Args:
        config: the job's predictions config (trigger, generation settings, validators, background).
        samples: the seeded sample set, the same in every round.
        tokenizer: renders chat prompts and decodes answers.
        publish: hands an event to the background publisher (never blocks).
        job: the job id and token every event carries.
        text_max_bytes: prompt, ground truth and prediction are each cut to this many UTF-8 bytes and
            flagged in the event's `truncated` (validators and scores see the whole texts).
        after_round: called on rank 0 after each published round with the weights that produced it
            (checkpoints, stop_when); in the round's thread, so inline it stalls training.

    Only one round runs per global step, whichever triggers land on it. Under several processes the
    prompts are split across ranks and gathered, and only rank 0 publishes. With `background`, a
    round generates on a snapshot of the weights in a worker thread while training goes on. A failing
    round is reported as a warning event; training goes on.
    """

    def __init__(
        self,
        config: PredictionsConfig,
        samples: list[Sample],
        tokenizer: Any,
        publish: Publish,
        job: JobIdentity,
        text_max_bytes: int = DEFAULT_TEXT_MAX_BYTES,
        after_round: AfterRound | None = None,
    ) -> None:
        self.config = config
        self.after_round = after_round
        self.text_max_bytes = text_max_bytes
        self.samples = samples
        self.tokenizer = tokenizer
        self.publish = publish
        self.job = job
        self.validator = OutputValidator(config.validators)
        self.grading = Grading(config.all_graders())
        self.generation = GenerationSettings(config.max_new_tokens, config.temperature, config.top_p, config.seed)
        self.rounds_run = 0
        self._steps_done: set[int] = set()
        self._worker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="predictions") if config.background else None
        )
        self._pending: Future[None] | None = None
        self._shadow: Any = None  # the background rounds' copy of the model
        self._shadow_tokenizer: Any = None
        self._trainable: list[str] = []

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.config.baseline_round:
            self.run_round(state, kwargs["model"], "baseline")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        interval = self.config.step_interval
        if self.config.sample_frequency == SampleFrequency.STEPS and interval and state.global_step % interval == 0:
            self.run_round(state, kwargs["model"], "steps")

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # A stop request (cancel, shutdown) also ends the epoch, part-way: that is no epoch's round.
        completed_epoch = abs((state.epoch or 0.0) - round(state.epoch or 0.0)) < 1e-6
        if self.config.sample_frequency == SampleFrequency.EPOCH and completed_epoch:
            self.run_round(state, kwargs["model"], "epoch")

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.config.sample_frequency == SampleFrequency.EVAL:
            self.run_round(state, kwargs["model"], "eval")

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.wait()

    def wait(self) -> None:
        """Until the background round in flight, if any, has published."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def run_round(self, state: TrainerState, model: Any, trigger: str) -> None:
        if state.global_step in self._steps_done or not self.samples:
            return
        self._steps_done.add(state.global_step)
        key = RoundKey(self.rounds_run, round(state.epoch or 0.0, 4), state.global_step, trigger)
        self.rounds_run += 1
        publishes = state.is_world_process_zero
        if self._worker is None or PartialState().num_processes > 1:
            self._round(model, self.tokenizer, key, publishes, stall_ms=None)
            return
        started = time.perf_counter()
        self.wait()  # one round in flight at most
        shadow = self._snapshot(model)
        stall_ms = (time.perf_counter() - started) * 1000
        self._pending = self._worker.submit(self._round, shadow, self._shadow_tokenizer, key, publishes, stall_ms)

    def _snapshot(self, model: Any) -> Any:
        """The weights as they are now, for a background round. The first call copies the model; later
        calls copy only what training changes (the trainable parameters: LoRA adapters, or all)."""
        if self._shadow is None:
            self._trainable = [name for name, p in model.named_parameters() if p.requires_grad]
            self._shadow = copy.deepcopy(model)
            self._shadow_tokenizer = copy.deepcopy(self.tokenizer)
            return self._shadow
        source = dict(model.named_parameters())
        target = dict(self._shadow.named_parameters())
        with torch.no_grad():
            for name in self._trainable:
                target[name].copy_(source[name])
        return self._shadow

    def _round(self, model: Any, tokenizer: Any, key: "RoundKey", publishes: bool, stall_ms: float | None) -> None:
        """Generate for every sample (on every rank) and, if `publishes` (rank 0), publish the round."""
        started = time.perf_counter()
        try:
            prompts = [render_prompt(sample, tokenizer) for sample in self.samples]
            generations = generate_across_ranks(model, tokenizer, prompts, self.generation)
        except Exception as exc:  # noqa: BLE001  a failed round must not stop training
            log.exception("prediction round %d failed", key.index)
            if publishes:
                message = f"round {key.index} at step {key.step}: {type(exc).__name__}: {exc}"
                self.publish(
                    TRAINING_STATUS,
                    WarningEvent(**self.job.envelope(), code="prediction_round_failed", message=message[:2000]),
                )
            return
        wall_ms = (time.perf_counter() - started) * 1000
        if not publishes:
            return
        self._warn_cut_prompts(key, generations)
        events = [
            self._prediction(key, sample, prompt, generation)
            for sample, prompt, generation in zip(self.samples, prompts, generations, strict=True)
        ]
        for event in events:
            self.publish(TRAINING_PREDICTIONS, event)
        summary = summarize(events, key, wall_ms, wall_ms if stall_ms is None else stall_ms)
        self.publish(TRAINING_STATUS, summary)
        if self.after_round is not None:
            self.after_round(model, tokenizer, summary, stall_ms is None)
        log.info("prediction round %d at step %d: %d predictions in %.0f ms", key.index, key.step, len(events), wall_ms)

    def _warn_cut_prompts(self, key: "RoundKey", generations: list[Generation]) -> None:
        pairs = zip(self.samples, generations, strict=True)
        cut = [f"{sample.sample_id} ({g.prompt_tokens_cut})" for sample, g in pairs if g.prompt_tokens_cut]
        if cut:
            message = (
                f"round {key.index}: {len(cut)} prompt(s) lost their first tokens to fit the model's context less"
                f" max_new_tokens: {', '.join(cut)}"
            )
            warning = WarningEvent(**self.job.envelope(), code="prompt_truncated", message=message[:2000])
            self.publish(TRAINING_STATUS, warning)

    def _prediction(self, key: "RoundKey", sample: Sample, prompt: str, generation: Generation) -> PredictionEvent:
        validation = self.validator(generation.text)
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
            valid=validation.valid,
            validation_error=validation.error[:2000] if validation.error else None,
            scores=score(generation.text, sample.ground_truth) if sample.ground_truth is not None else None,
            grades=self.grading(generation.text, sample.ground_truth),
        )


@dataclass(frozen=True)
class RoundKey:
    """Where a round sits in training: its index, epoch (fractional), global step, and what triggered it."""

    index: int
    epoch: float
    step: int
    trigger: str


def summarize(events: list[PredictionEvent], key: RoundKey, wall_ms: float, stall_ms: float) -> RoundSummaryEvent:
    """Counts and means of one round. Inline rounds stall training for their wall time; background
    rounds only for the weight snapshot."""
    validated = [e for e in events if e.valid is not None]
    scored = [e.scores for e in events if e.scores is not None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    first = events[0]
    return RoundSummaryEvent(
        job_id=first.job_id,
        job_token=first.job_token,
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
        stall_ms=stall_ms,
    )


class ProgressCallback(TrainerCallback):
    """A progress event at every log step (logging_steps): step, epoch, loss, learning rate, throughput."""

    def __init__(self, publish: Publish, job: JobIdentity, num_epochs: int) -> None:
        self.publish = publish
        self.job = job
        self.num_epochs = num_epochs
        self._started = time.perf_counter()
        self._samples_seen = 0

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._samples_seen += args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        elapsed = time.perf_counter() - self._started
        self.publish(
            TRAINING_STATUS,
            ProgressEvent(
                **self.job.envelope(),
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(state.epoch or 0.0, 4),
                num_epochs=self.num_epochs,
                loss=logs.get("loss"),
                learning_rate=logs.get("learning_rate"),
                samples_per_second=self._samples_seen / elapsed if elapsed > 0 else None,
            ),
        )


class StopOnRequest(TrainerCallback):
    """Stops training at the next step once `requested()` is true on any rank (a cancel or a shutdown).

    Every rank must agree to stop at the same step, or the others hang in the next collective.
    """

    def __init__(self, requested: Callable[[], bool]) -> None:
        self.requested = requested

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if any(gather_object([self.requested()])):
            control.should_training_stop = True
