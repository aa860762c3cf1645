"""Prediction rounds, one class to one job: `RoundTriggers` (when), `RoundRunner` (the weights and the generation
across ranks), the judge (`epochscope_runtime.grading`), `RoundPublisher` (the events and the summary)."""

from epochscope_runtime.grading import Judge
from epochscope_runtime.sampler import Sample
from epochscope_schemas.config import PredictionsConfig
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish
from epochscope_trainer.job.generation import GenerationSettings
from epochscope_trainer.job.predictions.round_publisher import RoundPublisher
from epochscope_trainer.job.predictions.round_runner import AfterRound, RoundRunner
from epochscope_trainer.job.predictions.triggers import RoundTriggers
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES


def prediction_rounds(
    config: PredictionsConfig,
    samples: list[Sample],
    tokenizer: object,
    publish: Publish,
    job: JobIdentity,
    text_max_bytes: int = DEFAULT_TEXT_MAX_BYTES,
    after_round: AfterRound | None = None,
) -> RoundTriggers:
    """The callback that runs the job's prediction rounds, wired to its runner, judge and publisher."""
    publisher = RoundPublisher(samples, Judge(config.graders), publish, job, text_max_bytes)
    generation = GenerationSettings(config.max_new_tokens, config.temperature, config.top_p, config.seed)
    runner = RoundRunner(samples, tokenizer, generation, publisher, config.background, after_round)
    return RoundTriggers(config, runner)
