"""Running a prediction round: which weights answer (the live model inline, or a snapshot in the background), and
generation across ranks. What the answers mean and where they go is the round publisher's job."""

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from accelerate import PartialState
from transformers import TrainerState

from epochscope_runtime.sampler import Sample
from epochscope_schemas.events import RoundSummaryEvent, RoundTrigger
from epochscope_trainer.job.generation import Generation, GenerationSettings, generate_across_ranks
from epochscope_trainer.job.predictions.snapshot import WeightSnapshot
from epochscope_trainer.job.prompts import render_prompt

log = logging.getLogger("epochscope.trainer.rounds")

# (model, tokenizer, summary, stalls_training): what a round's outcome drives (checkpoints, stop_when)
AfterRound = Callable[[Any, Any, RoundSummaryEvent, bool], None]


@dataclass(frozen=True)
class RoundKey:
    """Where a round sits in training: its index, epoch (fractional), global step, and what triggered it."""

    index: int
    epoch: float
    step: int
    trigger: RoundTrigger


@dataclass(frozen=True)
class RoundAnswers:
    """What one round generated, in sample order."""

    key: RoundKey
    prompts: list[str]
    generations: list[Generation]
    wall_ms: float
    stall_ms: float | None  # how long training waited: the snapshot of a background round; None inline (all of it)


class RoundReport(Protocol):
    """Where a round's outcome goes (`RoundPublisher`); called on rank 0 only."""

    def answered(self, answers: RoundAnswers) -> RoundSummaryEvent: ...

    def failed(self, key: RoundKey, exc: Exception) -> None: ...


class RoundRunner:
    """Runs one prediction round per global step at most, on the fixed samples.

    Args:
        samples: the seeded sample set, the same in every round.
        tokenizer: renders chat prompts and decodes answers.
        generation: how to generate (tokens, temperature, top_p, seed).
        report: takes each round's answers (or its failure) on rank 0.
        background: generate on a snapshot of the weights in a worker thread while training goes on (single
            process only; under several processes rounds run inline).
        after_round: called on rank 0 after each reported round with the weights that produced it; in the
            round's thread, so inline it stalls training.

    Under several processes the prompts are split across ranks and gathered. A failing round is reported as
    such; training goes on.
    """

    def __init__(
        self,
        samples: list[Sample],
        tokenizer: Any,
        generation: GenerationSettings,
        report: RoundReport,
        background: bool = False,
        after_round: AfterRound | None = None,
    ) -> None:
        self.samples = samples
        self.tokenizer = tokenizer
        self.generation = generation
        self.report = report
        self.after_round = after_round
        self.rounds_run = 0
        self._steps_done: set[int] = set()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predictions") if background else None
        self._snapshot = WeightSnapshot(tokenizer)
        self._pending: Future[None] | None = None

    def run(self, state: TrainerState, model: Any, trigger: RoundTrigger) -> None:
        """A round now, unless one already ran at this global step."""
        if state.global_step in self._steps_done or not self.samples:
            return
        self._steps_done.add(state.global_step)
        key = RoundKey(self.rounds_run, round(state.epoch or 0.0, 4), state.global_step, trigger)
        self.rounds_run += 1
        reports = state.is_world_process_zero
        if self._worker is None or PartialState().num_processes > 1:
            self._round(model, self.tokenizer, key, reports, stall_ms=None)
            return
        started = time.perf_counter()
        self.wait()  # one round in flight at most
        shadow, shadow_tokenizer = self._snapshot.take(model)
        stall_ms = (time.perf_counter() - started) * 1000
        self._pending = self._worker.submit(self._round, shadow, shadow_tokenizer, key, reports, stall_ms)

    def wait(self) -> None:
        """Until the background round in flight, if any, has been reported."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _round(self, model: Any, tokenizer: Any, key: RoundKey, reports: bool, stall_ms: float | None) -> None:
        """Generate for every sample (on every rank) and, if `reports` (rank 0), report the round."""
        started = time.perf_counter()
        try:
            prompts = [render_prompt(sample, tokenizer) for sample in self.samples]
            generations = generate_across_ranks(model, tokenizer, prompts, self.generation)
        except Exception as exc:  # noqa: BLE001  a failed round must not stop training
            log.exception("prediction round %d failed", key.index)
            if reports:
                self.report.failed(key, exc)
            return
        wall_ms = (time.perf_counter() - started) * 1000
        if not reports:
            return
        summary = self.report.answered(RoundAnswers(key, prompts, generations, wall_ms, stall_ms))
        if self.after_round is not None:
            self.after_round(model, tokenizer, summary, stall_ms is None)
        log.info("prediction round %d at step %d: %d answers in %.0f ms", key.index, key.step, len(prompts), wall_ms)
